"""Evidence: an observation, the MDP it was made in, and the human model that produced it.

The log-joint of the design sums ``Evidence.log_likelihood`` over items, each in
its own MDP and with its own human model, all sharing the reward parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Sequence

import torch

from irl.mdp import TabularMDP

__all__ = ["Evidence", "as_evidence_list"]


@dataclass(frozen=True, eq=False)
class Evidence:
    """``(mdp, observation, human)``: one source of evidence about the reward.

    Args:
        mdp: the MDP the observation was made in.
        observation: e.g. :class:`demos.Trajectories`; it must have a
            ``log_likelihood_under(human, mdp, reward)`` method.
        human: the human model that explains the observation.
        allow: data that contradict the MDP are refused when bound (an episode
            starting where ``mdp.initial`` is 0, a step the dynamics give
            probability 0, an action after a terminal state, ``terminated=True``
            on a non-terminal state), each with an error naming the episode and
            step. Name the ones that are legitimate for your data to accept them:
            ``"off_initial_start"`` (data recorded from other starts),
            ``"impossible_transitions"`` (data from a slightly different system),
            ``"terminated_elsewhere"`` (the MDP does not mark every terminal
            state). Actions after a terminal state are always refused.
        agent: who produced the observation (an agent, a participant), a
            non-empty string or ``None``. A reward model that gives each agent
            its own reward (:class:`irl.norms.SharedReward`) scores the item
            with that agent's reward; other reward models ignore it.

    Raises:
        TypeError: an argument of the wrong kind.
        demos.DemoValidationError: data that do not fit the MDP (ids, lengths, the
            checks above), naming the episode and step.
        ValueError: an unknown name in ``allow`` (listing the known ones).

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("gridworld-5x5")
        >>> d = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=3, seed=0)
        >>> ev = irl.Evidence(env, d, hm.Boltzmann(2.0))
        >>> float(ev.log_likelihood(env.true_reward)) < 0
        True
    """

    mdp: TabularMDP
    observation: Any
    human: Any
    allow: Collection[str] = ()
    agent: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mdp, TabularMDP):
            raise TypeError(f"Evidence.mdp must be an irl.TabularMDP: got {type(self.mdp).__name__}")
        if not hasattr(self.observation, "log_likelihood_under"):
            raise TypeError(f"Evidence.observation must be an evidence type (demos.Trajectories, ...): "
                            f"got {type(self.observation).__name__}")
        if not hasattr(self.human, "action_log_probs"):
            raise TypeError(f"Evidence.human must be a human model: got {type(self.human).__name__}")
        if self.agent is not None and (not isinstance(self.agent, str) or not self.agent):
            raise TypeError(f"Evidence.agent must be a non-empty string (a label such as 'alice' or 'p07') or None: "
                            f"got {self.agent!r}")
        validate = getattr(self.observation, "validate", None)
        if validate is not None:
            validate(self.mdp.n_states, self.mdp.n_actions, horizon=self.mdp.horizon)
        from demos.consistency import check_allow

        object.__setattr__(self, "allow", check_allow(self.allow))
        consistency = getattr(self.observation, "check_consistency", None)
        if consistency is not None:
            consistency(self.mdp, allow=self.allow)
        statistics = getattr(self.observation, "sufficient_statistics", None)
        if statistics is not None:  # counted once here; every likelihood call reuses them
            statistics(self.mdp)

    def log_likelihood(self, reward: Any) -> torch.Tensor:
        """``log p(observation | reward, human, mdp)``; differentiable in ``reward``."""
        return self.human.log_likelihood(self.mdp, reward, self.observation)


def as_evidence_list(env_or_evidence: Any, data: Any = None, human: Any = None) -> list[Evidence]:
    """Normalise ``fit(env, data)`` / ``fit(evidence)`` / ``fit([evidence, ...])`` to a list.

    Raises:
        TypeError: with the accepted forms.
    """
    if isinstance(env_or_evidence, Evidence):
        return [env_or_evidence]
    if isinstance(env_or_evidence, Sequence) and not isinstance(env_or_evidence, (str, bytes)):
        items = list(env_or_evidence)
        if not items or not all(isinstance(e, Evidence) for e in items):
            raise TypeError("fit([...]) takes a non-empty list of irl.Evidence items")
        return items
    if isinstance(env_or_evidence, TabularMDP):
        if data is None:
            raise TypeError("fit(env, data): the data argument is missing")
        if human is None:
            raise TypeError("this solver has no human model: pass human=... to the solver")
        return [Evidence(env_or_evidence, data, human)]
    raise TypeError(f"fit takes (env, data), an irl.Evidence or a list of them: got {type(env_or_evidence).__name__}")
