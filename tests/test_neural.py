"""NeuralReward: a torch network as a reward model (layouts, gradients, many maps, MaxEnt, files)."""

import numpy as np
import pytest
import torch

import demos
import human_models as hm
import irl
from irl.mdp import MDPValidationError
from irl.rewards import LinearReward, NeuralReward, build_network, parse_network_spec


def _world(size=4, seed=0, features="continuous", horizon=None):
    env = irl.envs.make("objectworld", size=size, features=features, placement_prob=0.3, seed=seed)
    return env if horizon is None else env.replace(horizon=horizon)


def _linear_net(F, w):
    net = torch.nn.Linear(F, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        net.weight.copy_(torch.as_tensor(w)[None])
    return net


def test_linear_network_equals_linear_reward():
    env = _world(5)
    w = np.linspace(-1, 1, env.n_features)
    model = NeuralReward(_linear_net(env.n_features, w), env)
    np.testing.assert_allclose(model(model.initial_theta()).numpy(),
                               LinearReward.from_mdp(env)(torch.tensor(w)).numpy(), atol=1e-12)
    d = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=6, seed=0, horizon=8)
    a = irl.LogJoint([irl.Evidence(env, d, hm.Boltzmann(2.0))], model).log_likelihood(model.initial_theta())
    b = irl.LogJoint([irl.Evidence(env, d, hm.Boltzmann(2.0))], LinearReward.from_mdp(env)).log_likelihood(
        torch.tensor(w))
    assert float(a) == pytest.approx(float(b), rel=1e-10)


def test_grid_layout_reads_cells_in_state_order():
    """A 1x1 convolution with the weights of a linear layer gives the same reward as the state layout."""
    env = _world(6, features="discrete")
    F = env.n_features
    w = torch.randn(F, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    conv = torch.nn.Conv2d(F, 1, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(w[None, :, None, None])
    grid = NeuralReward(conv, env, input="grid")
    np.testing.assert_allclose(grid.reward(env)[:, 0], env.features @ w.numpy(), atol=1e-10)
    # a 3x3 kernel that only looks right sees the right neighbour's features
    shift = torch.nn.Conv2d(F, 1, 3, padding=1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        shift.weight.zero_()
        shift.weight[0, :, 1, 2] = w
    r = NeuralReward(shift, env, input="grid").reward(env)[:, 0].reshape(6, 6)
    lin = (env.features @ w.numpy()).reshape(6, 6)
    np.testing.assert_allclose(r[:, :-1], lin[:, 1:], atol=1e-10)
    np.testing.assert_allclose(r[:, -1], 0.0, atol=1e-12)


def test_per_action_outputs_and_state_action_features():
    env = _world(4)
    per_action = NeuralReward.from_spec("mlp:hidden=4", env, per_action=True)
    r = per_action.reward(env)
    assert r.shape == (16, 5) and not np.allclose(r[:, 0], r[:, 1])
    f_sa = np.repeat(env.features[:, None, :], 5, axis=1) * np.arange(1, 6)[None, :, None]
    env_sa = env.replace(features=f_sa)
    sa = NeuralReward.from_spec("mlp:hidden=4", env_sa)
    assert sa.input == "state_action"
    x = torch.from_numpy(f_sa.reshape(-1, env.n_features))
    np.testing.assert_allclose(sa.reward(env_sa), sa.net(x).detach().numpy().reshape(16, 5), atol=1e-12)


@pytest.mark.parametrize("spec", ["mlp:hidden=5", "cnn:channels=3,kernel=3"])
@pytest.mark.parametrize("human", [hm.Boltzmann(2.0), hm.BoltzmannQ(2.0), hm.Myopic(horizon=2, beta=1.5)],
                         ids=["boltzmann", "boltzmannq", "myopic"])
def test_gradient_check_through_the_planner(spec, human):
    env = _world(3, horizon=4)
    model = NeuralReward.from_spec(spec, env, seed=1)
    d = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=4, seed=0)
    joint = irl.LogJoint([irl.Evidence(env, d, human)], model)
    theta = model.initial_theta().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: joint.log_likelihood(t), (theta,), eps=1e-6, atol=1e-5)


def test_other_evidence_types_and_many_maps_in_one_log_joint():
    envs = [_world(3, seed=0, horizon=4), _world(4, seed=1, horizon=4)]
    model = NeuralReward.from_spec("mlp:hidden=4", envs[0], seed=0)
    human = hm.Boltzmann(2.0)
    traj = demos.simulate(envs[0], human, envs[0].true_reward, n=3, seed=0)
    comp = demos.Comparisons.simulate(envs[1], human, envs[1].true_reward, 4, rng=1)
    states = demos.StateOnly.simulate(envs[1], human, envs[1].true_reward, 3, rng=2)
    items = [irl.Evidence(envs[0], traj, human), irl.Evidence(envs[1], comp, human),
             irl.Evidence(envs[1], states, human)]
    theta = model.initial_theta()
    with torch.no_grad():
        total = irl.LogJoint(items, model).log_likelihood(theta)
        parts = sum(float(irl.LogJoint([ev], model).log_likelihood(theta)) for ev in items)
        # each map gets the reward from its own features
        direct = sum(float(ev.log_likelihood(model.reward_for(ev.mdp, theta))) for ev in items)
    assert float(total) == pytest.approx(parts, rel=1e-12)
    assert float(total) == pytest.approx(direct, rel=1e-12)
    theta.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: irl.LogJoint(items, model).log_likelihood(t), (theta,), eps=1e-6,
                                    atol=1e-5)


def test_maxent_trains_the_network_and_keeps_it():
    env = irl.envs.make("objectworld", size=8, features="continuous", seed=0)
    d = demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, n=32, seed=0, horizon=8)
    model = NeuralReward.from_spec("mlp:hidden=16,16", env, seed=0)
    before = model.reward(env)
    evd_before = irl.metrics.expected_value_difference(env, irl.plan(env, before), env.true_reward)
    est = irl.MaxEnt(hm.Boltzmann(1.0), reward_model=model, max_iter=150).fit(env, d)
    assert est.reward_model is model
    np.testing.assert_allclose(model.reward(env), est.reward, atol=1e-10)  # the net holds the trained weights
    evd = irl.metrics.expected_value_difference(env, irl.plan(env, est.reward), env.true_reward)
    lin = irl.MaxEnt(hm.Boltzmann(1.0)).fit(env, d)
    evd_lin = irl.metrics.expected_value_difference(env, irl.plan(env, lin.reward), env.true_reward)
    assert evd < 0.25 * evd_before and evd < evd_lin  # the nonlinear reward beats the linear one on its map
    other = irl.envs.make("objectworld", size=10, features="continuous", seed=3)
    assert est.reward_model.reward(other).shape == (100, 5)


def test_save_load_roundtrip(tmp_path):
    env = _world(5)
    model = NeuralReward.from_spec("cnn:channels=4,4,kernel=3,activation=tanh", env, seed=2)
    path = tmp_path / "net.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"description", "state_dict"}
    desc = NeuralReward.describe(path)
    assert desc["architecture"]["kind"] == "cnn" and desc["input"] == "grid"
    again = NeuralReward.load(path)
    np.testing.assert_array_equal(again.reward(env), model.reward(env))
    # a user's own module: the file has no architecture, so the module is required
    own = NeuralReward(torch.nn.Sequential(torch.nn.Linear(env.n_features, 3), torch.nn.Tanh(),
                                           torch.nn.Linear(3, 1)), env)
    own.save(tmp_path / "own.pt")
    with pytest.raises(ValueError, match="pass net="):
        NeuralReward.load(tmp_path / "own.pt")
    net = torch.nn.Sequential(torch.nn.Linear(env.n_features, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    np.testing.assert_array_equal(NeuralReward.load(tmp_path / "own.pt", net=net).reward(env), own.reward(env))
    torch.save({"state_dict": {}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a neural reward file"):
        NeuralReward.load(tmp_path / "bad.pt")


def test_specs_and_validation_messages():
    assert parse_network_spec("mlp:hidden=64,64") == {"kind": "mlp", "hidden": [64, 64]}
    assert parse_network_spec("cnn:channels=8,kernel=5,out=5") == {"kind": "cnn", "channels": [8], "kernel": 5,
                                                                    "out": 5}
    with pytest.raises(ValueError, match="unknown network kind 'rnn'"):
        parse_network_spec("rnn:hidden=3")
    with pytest.raises(ValueError, match="unknown mlp option 'depth'"):
        parse_network_spec("mlp:depth=3")
    with pytest.raises(ValueError, match="must be integers"):
        parse_network_spec("mlp:hidden=a")
    with pytest.raises(ValueError, match="kernel must be odd"):
        build_network({"kind": "cnn", "in_channels": 2, "kernel": 2})
    with pytest.raises(ValueError, match="unknown activation 'gelu2'"):
        build_network({"kind": "mlp", "in_features": 2, "activation": "gelu2"})
    env = _world(4)
    model = NeuralReward.from_spec("mlp:hidden=3", env)
    with pytest.raises(MDPValidationError, match="reads 4 features per state"):
        model.reward(_world(4, features="discrete"))
    with pytest.raises(MDPValidationError, match="needs a grid MDP"):
        NeuralReward(torch.nn.Conv2d(4, 1, 1), env.replace(grid_shape=None), input="grid")
    with pytest.raises(MDPValidationError, match="returns 3 outputs per state"):
        NeuralReward(torch.nn.Linear(4, 3), env).reward(env)
    with pytest.raises(ValueError, match="without a reference MDP"):
        NeuralReward(torch.nn.Linear(4, 1))(torch.zeros(5))


def test_maxent_adam_with_minibatches_of_maps():
    envs = [irl.envs.make("objectworld", size=6, features="continuous", placement_prob=0.15, seed=s) for s in range(4)]
    items = [irl.Evidence(e, demos.simulate(e, hm.Boltzmann(1.0), e.true_reward, n=8, seed=i, horizon=8),
                          hm.Boltzmann(1.0)) for i, e in enumerate(envs)]
    model = NeuralReward.from_spec("mlp:hidden=8", envs[0], seed=0)
    start = float(irl.LogJoint(items, model).log_likelihood(model.initial_theta()).detach())
    seen = []
    est = irl.MaxEnt(reward_model=model, optimizer="adam", lr=0.05, batch_size=2, max_iter=40, seed=0,
                     callback=lambda i, obj, g: seen.append(i)).fit(items)
    assert seen == list(range(1, 41)) and est.info["evaluations"] == 41
    assert est.log_likelihood > start + 0.1 * abs(start)
    np.testing.assert_allclose(model.reward(envs[0]), est.reward, atol=1e-12)
    with pytest.raises(ValueError, match="need human models with fixed parameters"):
        import priors

        bad = [irl.Evidence(ev.mdp, ev.observation, hm.Boltzmann(beta=priors.LogNormal(0.0, 1.0))) for ev in items]
        irl.MaxEnt(reward_model=model, optimizer="adam", batch_size=2, max_iter=2).fit(bad)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        irl.MaxEnt(optimizer="sgd")


def test_linear_reward_reads_each_maps_own_features():
    """One weight vector over several maps of the same size: each map is scored through its own features."""
    a, b = irl.envs.gridworld(5, seed=0), irl.envs.gridworld(5, seed=1)
    assert not np.array_equal(a.features, b.features)
    w = torch.tensor([1.0, 0.0, -0.3, -1.0], dtype=torch.float64)
    items = [irl.Evidence(m, demos.simulate(m, hm.Boltzmann(2.0), m.true_reward, n=5, seed=0), hm.Boltzmann(2.0))
             for m in (a, b)]
    joint = irl.LogJoint(items, LinearReward.from_mdp(a))
    each = [float(ev.log_likelihood(LinearReward.from_mdp(ev.mdp)(w))) for ev in items]
    assert float(joint.log_likelihood(w)) == pytest.approx(sum(each), rel=1e-12)
    other = _world(5, features="discrete")  # 16 features
    data = demos.simulate(other, hm.Boltzmann(1.0), other.true_reward, n=2, seed=0, horizon=3)
    with pytest.raises(MDPValidationError, match=r"reads 4 features and 5 actions: MDP .* has features \(25, 16\)"):
        irl.LogJoint([irl.Evidence(other, data, hm.Boltzmann(1.0))], LinearReward.from_mdp(a))
