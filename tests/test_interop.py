"""Trajectories from and to imitation and Minari, with their own types."""

from __future__ import annotations

import numpy as np
import pytest

import demos
from demos import DemoValidationError


def _data(rewards: bool = True) -> demos.Trajectories:
    return demos.Trajectories.from_lists([[0, 1, 2], [3, 4], [5, 5]], [[1, 0], [2], [0]],
                                         rewards=[[0.5, -1.0], [2.0], [0.0]] if rewards else None,
                                         terminated=[True, False, False], truncated=[False, True, False])


def test_imitation_round_trip_keeps_terminal_flags():
    types = pytest.importorskip("imitation.data.types")
    d = _data()
    trajs = d.to_imitation()
    assert all(type(t) is types.TrajectoryWithRew for t in trajs)
    assert [t.terminal for t in trajs] == [True, False, False]
    assert trajs[0].obs.tolist() == [0, 1, 2] and trajs[0].rews.tolist() == [0.5, -1.0]
    back = demos.from_imitation(trajs)
    assert back.states.tolist() == d.states.tolist() and back.actions.tolist() == d.actions.tolist()
    assert back.rewards.tolist() == d.rewards.tolist() and back.terminated.tolist() == [True, False, False]
    # imitation has no truncation flag: a non-terminal episode comes back as neither
    assert not back.truncated.any()
    with pytest.raises(DemoValidationError, match="imitation needs at least one action per trajectory: trajectory 1"):
        demos.Trajectories.from_lists([[0, 1], [2]], [[0], []]).to_imitation()
    plain = _data(rewards=False).to_imitation()
    assert all(type(t) is types.Trajectory for t in plain) and demos.from_imitation(plain).rewards is None


def test_imitation_data_an_imitation_algorithm_accepts():
    pytest.importorskip("imitation")
    from imitation.data import rollout

    stats = rollout.rollout_stats(_data().to_imitation())
    assert stats["n_traj"] == 3 and stats["return_max"] == 2.0


def test_from_imitation_refuses_what_is_not_discrete():
    types = pytest.importorskip("imitation.data.types")
    with pytest.raises(DemoValidationError, match="element 0 must be an imitation Trajectory: got list"):
        demos.from_imitation([[0, 1]])
    img = types.Trajectory(obs=np.zeros((3, 4, 4)), acts=np.array([0, 1]), infos=None, terminal=True)
    with pytest.raises(DemoValidationError, match=r"trajectory 0: obs must be discrete ids.*got shape \(3, 4, 4\)"):
        demos.from_imitation([img])


_MINARI_ADVICE = "ignore:.*(is set to None|env_spec is None).*:UserWarning"  # Minari asks for an author, a code link, ...


@pytest.mark.filterwarnings(_MINARI_ADVICE)
def test_minari_round_trip_keeps_terminations_and_truncations_apart(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    d = demos.Trajectories.from_lists([[0, 1, 2], [3, 4], [5, 6, 7]], [[1, 0], [2], [0, 0]],
                                      rewards=[[0.5, -1.0], [2.0], [0.0, 1.0]],
                                      terminated=[True, False, False], truncated=[False, True, False])
    ds = demos.to_minari(d, "pirl/test-v0", n_states=8, n_actions=3)
    assert ds.total_episodes == 3 and ds.total_steps == 5
    again = minari.load_dataset("pirl/test-v0")
    back = demos.from_minari(again)
    for k in ("states", "actions", "lengths", "rewards", "terminated", "truncated"):
        assert getattr(back, k).tolist() == getattr(d, k).tolist(), k
    with pytest.raises(DemoValidationError, match="pass fill_reward=0.0"):
        demos.to_minari(_data(rewards=False), "pirl/none-v0", n_states=6, n_actions=3)


@pytest.mark.filterwarnings(_MINARI_ADVICE)
def test_from_minari_refuses_continuous_spaces(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    from gymnasium import spaces
    from minari.data_collector.episode_buffer import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    buf = EpisodeBuffer(id=0, observations=[np.zeros(2, np.float32)] * 3, actions=[0, 1], rewards=[0.0, 0.0],
                        terminations=[False, True], truncations=[False, False])
    ds = minari.create_dataset_from_buffers("pirl/box-v0", [buf], observation_space=spaces.Box(-1, 1, (2,)),
                                            action_space=spaces.Discrete(2))
    with pytest.raises(DemoValidationError, match=r"observation space must be Discrete to give tabular ids: got Box"):
        demos.from_minari(ds)
