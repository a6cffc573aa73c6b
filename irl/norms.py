"""Norms shared by several agents, and group-level priors across the participants of a study.

Several people with different goals often obey the same norms. A hierarchical
reward gives agent ``i`` the reward

    r_i(s, a) = r_shared(s, a; theta_shared) + r_own(s, a; theta_i)

with one parameter vector ``theta = [theta_shared, theta_1, ..., theta_G]``
fitted to all agents' evidence at once. :class:`SharedReward` is such a reward
model; every :class:`irl.Evidence` item names its agent (``agent="alice"``) and
is scored with that agent's reward. Because it is an ordinary reward model of
:class:`irl.LogJoint`, it works with every solver (MAP with
:class:`irl.MaxEnt`, posteriors with :class:`irl.BayesianIRL`'s HMC, NUTS or
PolicyWalk), every human model and every evidence type, with exact gradients
through the planner (:mod:`irl.autodiff`).

The same mechanism gives **partial pooling** (group-level priors across the
participants of a study): with ``pooling=True`` each agent's own parameters are
drawn from a group distribution whose mean and scale are inferred with them,

    theta_i = mu + tau * z_i,    z_i ~ Normal(0, 1),    mu ~ prior,    tau ~ prior

(the non-centred parameterisation, whose geometry suits HMC and whose MAP does
not collapse to ``tau = 0``). With few demonstrations per participant each
estimate borrows strength from the others (shrinkage towards ``mu``).

Identifiability: ``r_shared + r_own_i`` only depends on the sum, so whatever the
shared block and *every* own block can both express (a direction in the span of
both reward models) can be moved from the own blocks to the shared block
without changing the likelihood. Two ways out, both supported:

* give the blocks disjoint features (the shared block reads the norm features,
  the own blocks the goal features): then the split is identified whenever the
  features are linearly independent (:meth:`SharedReward.overlap` is 0);
* or give both blocks a proper prior (:meth:`SharedReward.prior`): the prior
  decides the split along the unidentified directions (a Gaussian prior puts
  the common part where it costs least).

A fit with an overlap and no prior is warned about (:class:`NonIdentifiedWarning`).

Example:
    >>> import irl, human_models as hm, demos
    >>> from irl.envs import park
    >>> env = irl.envs.make("park")
    >>> agents = ["A", "B", "C", "D"]     # four agents, each walking to its own landmark
    >>> evidence = [irl.Evidence(env, demos.simulate(env, hm.Boltzmann(3.0), park.agent_reward(env, g), n=5,
    ...                                              seed=k), hm.Boltzmann(3.0), agent=g)
    ...             for k, g in enumerate(agents)]
    >>> model = SharedReward.from_features(env, shared=park.NORM_FEATURES, own=park.GOAL_FEATURES, agents=agents)
    >>> est = irl.MaxEnt(reward_model=model, prior=model.prior()).fit(evidence)
    >>> bool(est.theta[0] < 0 and est.theta[1] < 0)       # keep off the lawn and the flowerbeds
    True

References:
    Dimitrakakis & Rothkopf (2011), "Bayesian multitask inverse reinforcement
    learning", EWRL. Choi & Kim (2012), "Nonparametric Bayesian inverse
    reinforcement learning for multiple reward functions", NeurIPS (and Choi &
    Kim 2011, "MAP inference for Bayesian inverse reinforcement learning").
    Gelman, Carlin, Stern, Dunson, Vehtari & Rubin (2013), "Bayesian Data
    Analysis", 3rd ed., chapter 5 (hierarchical models, partial pooling).
    Papaspiliopoulos, Roberts & Sköld (2007), "A general framework for the
    parametrization of hierarchical models", Statistical Science 22(1)
    (non-centred parameterisation).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from irl.mdp import MDPValidationError, TabularMDP
from irl.rewards import LinearReward, RewardModel

__all__ = ["SharedReward", "SharedRewardPrior", "NonIdentifiedWarning", "select_features", "transfer_evd"]


class NonIdentifiedWarning(UserWarning):
    """A fit whose shared/own split is not identified by the data (nor decided by a prior)."""


def select_features(mdp: TabularMDP, names: Sequence[str]) -> LinearReward:
    """A linear reward on some of ``mdp``'s features, chosen by name.

    Args:
        mdp: an MDP with ``features`` ``(S, F)`` or ``(S, A, F)`` and ``feature_names``.
        names: the features to use, in the order of the parameters.

    Returns:
        :class:`irl.rewards.LinearReward` with ``len(names)`` parameters.

    Raises:
        MDPValidationError: the MDP has no (named) features, or a name is unknown
            (listing the known ones).

    Example:
        >>> import irl
        >>> select_features(irl.envs.make("gridworld-5x5"), ["mud", "water"]).param_names()
        ['mud', 'water']
    """
    if mdp.features is None or mdp.feature_names is None:
        raise MDPValidationError(f"MDP {mdp.name!r} has no named features to select from")
    known = list(mdp.feature_names)
    unknown = [n for n in names if n not in known]
    if unknown or not len(names):
        raise MDPValidationError(f"features {unknown or '[]'} are not features of {mdp.name!r}; known: {known}")
    cols = [known.index(n) for n in names]
    return LinearReward(np.asarray(mdp.features)[..., cols], mdp.n_actions, names=list(names))


def transfer_evd(env: TabularMDP, norm: Any, true_norm: Any, goals: Any) -> np.ndarray:
    """How well an inferred norm serves *new* agents: the EVD of each one planning with the norm plus its own goal.

    A new agent ``k`` knows its goal reward ``goals[k]`` and adopts the inferred
    ``norm``; it plans optimally for ``norm + goals[k]`` (:func:`irl.plan`), and is
    judged under ``true_norm + goals[k]`` by the expected value difference
    (:func:`irl.metrics.expected_value_difference`; 0 when the norm is as good as the
    true one for that goal).

    Args:
        env: the MDP the new agents act in.
        norm: the inferred norm ``(S,)`` or ``(S, A)`` (e.g. ``est.reward`` of a
            :class:`SharedReward` fit: the shared component).
        true_norm: the true norm, same shape.
        goals: the new agents' own rewards ``(K, S)`` or ``(K, S, A)``.

    Returns:
        ``(K,)`` expected value differences, ``>= 0``.

    Example:
        >>> import numpy as np, irl
        >>> env = irl.envs.make("park")
        >>> goals = np.eye(env.n_states)[[40, 49]]            # two new agents: goals at cells 40 and 49
        >>> transfer_evd(env, env.true_reward, env.true_reward, goals).tolist()
        [0.0, 0.0]
        >>> bool((transfer_evd(env, np.zeros(env.n_states), env.true_reward, goals) > 0).all())  # no norm
        True
    """
    from irl.metrics import expected_value_difference
    from irl.plan import plan

    n, t = np.asarray(norm, dtype=np.float64), np.asarray(true_norm, dtype=np.float64)
    g = np.asarray(goals, dtype=np.float64)
    if g.ndim != n.ndim + 1 or g.shape[1:] != n.shape or n.shape != t.shape:
        raise ValueError(f"transfer_evd needs norm and true_norm of one shape (S,) or (S, A) and goals (K, *that "
                         f"shape): got norm {n.shape}, true_norm {t.shape}, goals {g.shape}")
    return np.array([expected_value_difference(env, plan(env, n + gk), t + gk) for gk in g])


class SharedReward(RewardModel):
    """Agent ``i``'s reward ``r_i = shared(theta_shared) + own(theta_i)``; one parameter vector for all agents.

    The parameters are laid out as ``[theta_shared (Ps) | theta_1 (Po) | ... | theta_G (Po)]``,
    or with ``pooling=True`` as ``[theta_shared | mu (Po) | log_tau (Po) | z_1 (Po) | ... | z_G (Po)]``
    with ``theta_i = mu + exp(log_tau) * z_i``. Each :class:`irl.Evidence` item is
    scored with the reward of its ``agent`` (:class:`irl.LogJoint` asks
    :meth:`evidence_rewards`). Calling the model, ``model(theta)``, gives the
    *population* reward ``shared(theta_shared)`` (plus ``own(mu)`` with pooling):
    the part every agent has in common, which is what :class:`irl.RewardEstimate`
    and :class:`irl.Posterior` report as their ``reward``.

    Args:
        shared: reward model of the shared component (the norm), e.g. linear in the
            norm features; ``None`` for no shared component (pure partial pooling).
        own: reward model of each agent's own component (e.g. linear in goal features).
        agents: the agents' labels, in the order of their parameter blocks (distinct,
            non-empty strings; every evidence item's ``agent`` must be one of them).
        pooling: draw the own parameters from an inferred group distribution
            (partial pooling; the prior must come from :meth:`prior`).

    Identifiability: what both ``shared`` and ``own`` can express can move between
    the shared block and every own block without changing the likelihood
    (:meth:`overlap` counts those directions); give the blocks disjoint features or
    proper priors (:meth:`prior`).

    Raises:
        TypeError: components that are not reward models.
        ValueError: no agents, repeated or empty labels, or component models of
            different sizes.

    Example:
        >>> import torch, irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> m = SharedReward(select_features(env, ["mud", "water"]), select_features(env, ["goal"]), ["a", "b"])
        >>> m.param_names()
        ['shared.mud', 'shared.water', 'a.goal', 'b.goal']
        >>> m.agent_rewards(torch.tensor([0.0, -1.0, 1.0, 2.0])).shape   # (G, S, A)
        torch.Size([2, 25, 5])

    References:
        Dimitrakakis & Rothkopf (2011), "Bayesian multitask inverse reinforcement
        learning", EWRL (a shared prior over the tasks' rewards). Choi & Kim (2012),
        "Nonparametric Bayesian inverse reinforcement learning for multiple reward
        functions", NeurIPS. Gelman et al. (2013), "Bayesian Data Analysis", 3rd ed.,
        chapter 5 (partial pooling); Betancourt & Girolami (2015), "Hamiltonian Monte
        Carlo for hierarchical models" (the non-centred parameterisation under HMC).
    """

    def __init__(self, shared: RewardModel | None, own: RewardModel, agents: Sequence[str], *,
                 pooling: bool = False) -> None:
        if not isinstance(own, RewardModel) or (shared is not None and not isinstance(shared, RewardModel)):
            raise TypeError(f"SharedReward needs reward models (irl.rewards.LinearReward, ...): got shared="
                            f"{type(shared).__name__}, own={type(own).__name__}")
        agents = list(agents) if not isinstance(agents, str) else [agents]
        bad = [a for a in agents if not isinstance(a, str) or not a]
        if not agents or bad:
            raise ValueError(f"SharedReward agents must be a non-empty list of non-empty strings: got {agents!r}")
        dup = sorted({a for a in agents if agents.count(a) > 1})
        if dup:
            raise ValueError(f"SharedReward agents must be distinct: {dup} appear more than once")
        if shared is not None and (shared.n_states, shared.n_actions) != (own.n_states, own.n_actions):
            raise ValueError(f"shared and own reward models must have the same (S, A): got "
                             f"({shared.n_states}, {shared.n_actions}) and ({own.n_states}, {own.n_actions})")
        self.shared, self.own, self.agents, self.pooling = shared, own, agents, bool(pooling)
        self.n_states, self.n_actions = own.n_states, own.n_actions
        self.homogeneous = (not self.pooling and bool(getattr(own, "homogeneous", False))
                            and (shared is None or bool(getattr(shared, "homogeneous", False))))
        self._index = {a: i for i, a in enumerate(agents)}

    @classmethod
    def from_features(cls, mdp: TabularMDP, *, shared: Sequence[str] | None, own: Sequence[str],
                      agents: Sequence[str], pooling: bool = False) -> "SharedReward":
        """Linear shared and own components on named features of ``mdp`` (see :func:`select_features`).

        Disjoint, linearly independent feature sets make the split identified.
        """
        return cls(None if not shared else select_features(mdp, shared), select_features(mdp, own), agents,
                   pooling=pooling)

    # ---------------------------------------------------------------- layout
    @property
    def n_shared(self) -> int:
        """Number of shared parameters ``Ps``."""
        return 0 if self.shared is None else self.shared.n_params

    @property
    def n_own(self) -> int:
        """Number of own parameters per agent ``Po``."""
        return self.own.n_params

    @property
    def n_params(self) -> int:
        return self.n_shared + (len(self.agents) + (2 if self.pooling else 0)) * self.n_own

    def param_names(self) -> list[str]:
        shared = [] if self.shared is None else [f"shared.{n}" for n in self.shared.param_names()]
        own = self.own.param_names()
        if not self.pooling:
            return shared + [f"{a}.{n}" for a in self.agents for n in own]
        return (shared + [f"mean.{n}" for n in own] + [f"log_scale.{n}" for n in own]
                + [f"{a}.z.{n}" for a in self.agents for n in own])

    def split(self, theta: Any) -> dict[str, torch.Tensor]:
        """The blocks of ``theta (..., P)``.

        Returns:
            ``{"shared": (..., Ps), "own": (..., G, Po)}`` (the agents' own parameters,
            ``mu + tau * z_i`` with pooling), and with pooling also ``"mean"`` ``(..., Po)``,
            ``"scale"`` ``(..., Po)`` (``tau``), ``"log_scale"`` ``(..., Po)`` and ``"z"`` ``(..., G, Po)``.
        """
        t = self._check(theta)
        t = t if t.dtype == torch.float64 else t.to(torch.float64)
        Ps, Po, G = self.n_shared, self.n_own, len(self.agents)
        out = {"shared": t[..., :Ps]}
        rest = t[..., Ps:]
        if not self.pooling:
            out["own"] = rest.reshape(*rest.shape[:-1], G, Po)
            return out
        mu, log_tau = rest[..., :Po], rest[..., Po:2 * Po]
        z = rest[..., 2 * Po:].reshape(*rest.shape[:-1], G, Po)
        tau = torch.exp(log_tau)
        out.update(mean=mu, log_scale=log_tau, scale=tau, z=z, own=mu[..., None, :] + tau[..., None, :] * z)
        return out

    # ---------------------------------------------------------------- rewards
    def shared_reward(self, theta: Any) -> torch.Tensor:
        """The shared component (the norm) ``(..., S, A)`` (zeros without a shared model)."""
        t = self._check(theta)
        if self.shared is None:
            return torch.zeros(*t.shape[:-1], self.n_states, self.n_actions, dtype=torch.float64)
        return self.shared(self.split(t)["shared"])

    def agent_rewards(self, theta: Any) -> torch.Tensor:
        """Every agent's reward ``(..., G, S, A)``, agents in the order of :attr:`agents`."""
        parts = self.split(theta)
        return self.shared_reward(theta)[..., None, :, :] + self.own(parts["own"])

    def agent_reward(self, theta: Any, agent: str) -> torch.Tensor:
        """One agent's reward ``(..., S, A)``.

        Raises:
            KeyError: an unknown agent (listing the known ones).
        """
        if agent not in self._index:
            raise KeyError(f"unknown agent {agent!r}; known: {', '.join(self.agents)}")
        return self.agent_rewards(theta)[..., self._index[agent], :, :]

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """The population reward ``(..., S, A)``: the shared component (plus ``own(mu)`` with pooling)."""
        r = self.shared_reward(theta)
        if self.pooling:
            r = r + self.own(self.split(theta)["mean"])
        return r

    def evidence_rewards(self, theta: torch.Tensor, evidence: Sequence[Any]) -> list[torch.Tensor]:
        """The reward of each evidence item's agent, ``[(..., S, A)]`` (used by :class:`irl.LogJoint`)."""
        rewards = self.agent_rewards(theta)
        return [rewards[..., self._index[ev.agent], :, :] for ev in evidence]

    # ---------------------------------------------------------------- checks
    def check_joint(self, evidence: Sequence[Any], prior: Any) -> None:
        """Refuse evidence without a known agent and a pooled model without its prior; warn when not identified.

        Called by :class:`irl.LogJoint`.

        Raises:
            ValueError: an item whose ``agent`` is ``None`` or not one of :attr:`agents`,
                or ``pooling=True`` with a prior that is not this model's :meth:`prior`.
        """
        for i, ev in enumerate(evidence):
            if getattr(ev, "agent", None) not in self._index:
                raise ValueError(f"evidence {i} has agent={getattr(ev, 'agent', None)!r}, but SharedReward scores "
                                 f"each item with its agent's reward and knows the agents {self.agents}: label it, "
                                 f"e.g. irl.Evidence(env, data, human, agent={self.agents[0]!r})")
        if self.pooling and not (isinstance(prior, SharedRewardPrior) and prior.model is self):
            raise ValueError(f"SharedReward(pooling=True) needs its own hierarchical prior (the group distribution "
                             f"of the agents' parameters): prior=model.prior(...); got {prior!r}")
        if prior is None and self.overlap() > 0:
            warnings.warn(f"the shared and own reward models both express {self.overlap()} direction(s) of reward, "
                          f"which can move between the shared block and every own block without changing the "
                          f"likelihood: with no prior the split is arbitrary. Give the blocks disjoint features "
                          f"or a prior (prior=model.prior())", NonIdentifiedWarning, stacklevel=4)

    def overlap(self) -> int:
        """Dimension of the rewards both the shared and the own model can express (0: split identified).

        For linear (homogeneous) components: ``rank(J_s) + rank(J_o) - rank([J_s, J_o])`` of
        their reward Jacobians. With a non-linear component the overlap cannot be read off
        globally and ``min(Ps, Po)`` is returned (a conservative bound).

        Example:
            >>> import irl
            >>> env = irl.envs.make("gridworld-5x5")
            >>> own = irl.rewards.TabularReward(env.n_states, env.n_actions)
            >>> SharedReward(select_features(env, ["mud"]), own, ["a"]).overlap()
            1
        """
        if self.shared is None:
            return 0
        if not (getattr(self.shared, "homogeneous", False) and getattr(self.own, "homogeneous", False)):
            return min(self.shared.n_params, self.own.n_params)
        with torch.no_grad():
            Js = self.shared(torch.eye(self.n_shared, dtype=torch.float64)).reshape(self.n_shared, -1).numpy()
            Jo = self.own(torch.eye(self.n_own, dtype=torch.float64)).reshape(self.n_own, -1).numpy()
        rank = np.linalg.matrix_rank
        return int(rank(Js) + rank(Jo) - rank(np.concatenate([Js, Jo])))

    # ---------------------------------------------------------------- priors
    def prior(self, shared: Any = None, own: Any = None, *, mean: Any = None, scale: Any = None
              ) -> "SharedRewardPrior":
        """The prior of this model's parameters, one per block.

        Args:
            shared: prior of each shared parameter (default ``priors.Gaussian(0, 1)``).
            own: prior of each agent's own parameter without pooling (default
                ``priors.Gaussian(0, 1)``); with pooling the offsets ``z_i`` are ``Normal(0, 1)``.
            mean: with pooling, prior of the group mean ``mu`` (default ``priors.Gaussian(0, 2)``).
            scale: with pooling, prior of the group scale ``tau > 0`` (default
                ``priors.HalfNormal(1)``); a prior on positive values.

        Returns:
            :class:`SharedRewardPrior`, to pass as ``prior=`` to a solver.
        """
        from priors import Gaussian, HalfNormal

        if own is not None and self.pooling:
            raise ValueError("with pooling the agents' own parameters follow the group distribution: give mean= and "
                             "scale= (their priors), not own=")
        if (mean is not None or scale is not None) and not self.pooling:
            raise ValueError("mean= and scale= are the group distribution of partial pooling: use "
                             "SharedReward(..., pooling=True)")
        return SharedRewardPrior(self, shared=Gaussian(0.0, 1.0) if shared is None else shared,
                                 own=Gaussian(0.0, 1.0) if own is None else own,
                                 mean=Gaussian(0.0, 2.0) if mean is None else mean,
                                 scale=HalfNormal(1.0) if scale is None else scale)

    def __repr__(self) -> str:
        return (f"SharedReward(shared={self.shared.param_names() if self.shared is not None else None}, "
                f"own={self.own.param_names()}, agents={self.agents}, pooling={self.pooling})")


class SharedRewardPrior:
    """Prior of a :class:`SharedReward`'s parameters, block by block (build it with :meth:`SharedReward.prior`).

    ``log_prob(theta)`` is ``shared.log_prob(theta_shared) + sum_i own.log_prob(theta_i)``;
    with pooling ``mean.log_prob(mu) + sum_j [log p_scale(tau_j) + log tau_j] +
    sum_i log Normal(z_i; 0, 1)``: the density of the sampled coordinates
    ``(mu, log tau, z)`` (the ``log tau`` term is the change of variables), so MAP
    and HMC see the same, proper target.

    Args:
        model: the :class:`SharedReward` whose parameters this prior covers.
        shared: prior of each shared parameter (``log_prob`` sums over the last axis).
        own: prior of each own parameter (without pooling).
        mean: prior of each group-mean parameter (with pooling).
        scale: prior of each group-scale parameter, on positive values (with pooling).

    Raises:
        ValueError: a discrete prior, or a scale prior that is not on positive values.
    """

    discrete = False

    def __init__(self, model: SharedReward, *, shared: Any, own: Any, mean: Any, scale: Any) -> None:
        for name, pr in (("shared", shared), ("own", own), ("mean", mean), ("scale", scale)):
            if getattr(pr, "discrete", False) or not callable(getattr(pr, "log_prob", None)):
                raise ValueError(f"the {name} prior must be a continuous prior with log_prob "
                                 f"(priors.Gaussian, priors.Laplace, ...): got {pr!r}")
        if model.pooling:
            low = getattr(getattr(scale, "support", None), "lower_bound", None)
            if low is None or float(low) != 0.0 or not callable(getattr(scale, "distribution", None)):
                raise ValueError(f"the scale prior of partial pooling must be a prior on positive values "
                                 f"(priors.HalfNormal, priors.LogNormal, priors.Gamma, priors.Exponential): "
                                 f"got {scale!r}")
        self.model, self.shared, self.own, self.mean, self.scale = model, shared, own, mean, scale

    def log_prob(self, theta: Any) -> torch.Tensor:
        """Log-density ``(...)`` of parameters ``(..., P)``."""
        parts = self.model.split(torch.as_tensor(theta, dtype=torch.float64))
        lp = self.shared.log_prob(parts["shared"]) if self.model.n_shared else torch.zeros(
            parts["shared"].shape[:-1], dtype=torch.float64)
        if not self.model.pooling:
            return lp + self.own.log_prob(parts["own"]).sum(-1)
        lp = lp + self.mean.log_prob(parts["mean"])
        lp = lp + (self.scale.distribution().log_prob(parts["scale"]) + parts["log_scale"]).sum(-1)
        return lp + (-0.5 * parts["z"] ** 2 - 0.5 * math.log(2 * math.pi)).sum((-1, -2))

    def __repr__(self) -> str:
        blocks = f"shared={self.shared!r}, " if self.model.n_shared else ""
        blocks += (f"mean={self.mean!r}, scale={self.scale!r}, z=Normal(0, 1)" if self.model.pooling
                   else f"own={self.own!r}")
        return f"SharedRewardPrior({blocks}; agents={self.model.agents})"
