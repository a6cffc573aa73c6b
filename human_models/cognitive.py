"""Cognition-level human models: how a person deliberates, not only how they act.

These models act in a *meta-level* MDP (see :mod:`irl.metalevel`): the
actions are computations (clicks that reveal a node's reward at a cost) and a
terminal action that stops deliberating and takes the best path under the
current beliefs. They are scored on :class:`demos.DeliberationTraces`, which
hand them the belief state of every recorded decision.

* :class:`MetaBoltzmann`: a softmax over meta-level Q-values,
  ``pi(a | b) ∝ exp(beta * Q(b, a; cost, depth_cost, w))``, where a click on
  node ``n`` costs ``cost + depth_cost * depth(n)`` and ``w`` is the utility of a
  point (the points themselves, or the reward it is given).
* :class:`RandomClicks`: the null model, uniformly random among the possible
  meta-level actions.

How the one mechanism applies. A human model here owns both directions like
any other: ``meta_log_probs(mdp, reward, beliefs)`` is its policy (the
meta-level analogue of ``action_log_probs``), ``log_likelihood(mdp, reward,
traces)`` delegates to ``traces.log_likelihood_under`` (which sums the
log-probabilities of the recorded clicks and stops), and ``sample(mdp, reward,
n, rng)`` simulates traces. The parameters being inferred are the human's own:
the costs of computation and the temperature (``phi`` of the design), given as
priors; the Mouselab environments have no reward features, because the points
are drawn per trial and shown to the person. With ``values="reward"`` the
reward becomes the utility of one point at each depth (the object-level
reward ``theta``), inferred with a per-depth reward model
(:func:`irl.envs.mouselab.depth_reward_model`) and ``beta`` fixed, since the
scale of utilities and the temperature are confounded.

References:
    Callaway, Lieder, Das, Gul, Krueger & Griffiths (2018), "A resource-rational
    analysis of human planning", CogSci. Lieder & Griffiths (2020),
    "Resource-rational analysis", Behavioral and Brain Sciences. Jain et al.
    (2023), Behavior Research Methods. Stephan, Penny, Daunizeau, Moran & Friston
    (2009), "Bayesian model selection for group studies", NeuroImage.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch

from human_models.base import BaseHumanModel, HumanModelError, check_array_param, positive_param
from irl.metalevel.mdp import MetaLevelError

__all__ = ["MetaBoltzmann", "RandomClicks", "amplify", "check_meta_human_model", "meta_of"]


def meta_of(mdp: Any) -> Any:
    """The meta-level problem of an environment (``mdp.meta``), or a clear error."""
    meta = getattr(mdp, "meta", None)
    if meta is None or not hasattr(meta, "solver"):
        raise HumanModelError(f"a cognition-level model needs an environment with a meta-level problem, such as "
                              f"irl.envs.make('mouselab-312'): {getattr(mdp, 'name', type(mdp).__name__)!r} has none")
    return meta


def _real_param(name: str, value: Any) -> Any:
    from priors import is_prior

    if isinstance(value, (torch.Tensor, np.ndarray)):
        return check_array_param(name, value, "", lambda v: np.ones(v.shape, bool))
    if is_prior(value):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise HumanModelError(f"{name} must be a number or a prior: got {value!r}") from None
    if not np.isfinite(v):
        raise HumanModelError(f"{name} must be finite: got {value!r}")
    return v


def _as_tensor(x: Any) -> torch.Tensor:
    return x.to(torch.float64) if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=torch.float64)


class _MetaQ(torch.autograd.Function):
    """Q-values ``(D, A)`` at beliefs as a function of ``phi (P,)``; backward = the planes (exact gradients)."""

    @staticmethod
    def forward(ctx: Any, phi: torch.Tensor, solver: Any,  # type: ignore[override]
                beliefs: np.ndarray) -> torch.Tensor:
        p = phi.detach().to(torch.float64).cpu().numpy()
        planes = solver.q_planes(beliefs, p)  # (D, A, P)
        ctx.planes = planes
        return torch.from_numpy(planes @ p).to(phi.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        grad = np.einsum("da,dap->p", g.detach().to(torch.float64).cpu().numpy(), ctx.planes)
        return torch.from_numpy(grad).to(g.dtype), None, None


def _split_batch(*values: Any) -> tuple[int, list[list[Any]]]:
    """Broadcast scalars/``(B,)`` tensors to a common batch; returns ``B`` (0 = unbatched) and per-item lists."""
    B = 0
    for v in values:
        if isinstance(v, torch.Tensor) and v.ndim > 0:
            if v.ndim != 1 or (B and v.shape[0] != B):
                raise HumanModelError(f"batched parameters must all have shape (B,): got {tuple(v.shape)}")
            B = int(v.shape[0])
    items = []
    for v in values:
        if isinstance(v, torch.Tensor) and v.ndim > 0:
            items.append([v[i] for i in range(B)])
        else:
            items.append([v] * max(B, 1))
    return B, items


class MetaBoltzmann(BaseHumanModel):
    """Softmax over meta-level Q-values: noisy-rational deliberation with a cost of computation.

    ``pi(a | b) ∝ exp(beta * Q(b, a))`` over the possible meta-level actions in
    belief ``b`` (stop = action 0, or click a hidden node ``n``), where ``Q`` is
    the optimal meta-level value for a person who pays ``cost + depth_cost *
    depth(n)`` per click and values a path by its points (``values="points"``)
    or by ``sum_n w(n) * points(n)`` with ``w`` the reward it is given
    (``values="reward"``; the utility of a point at each node, the same at
    every node of a depth). ``cost`` is the total subjective cost of a click in
    points (the task's own price is ``env.meta.fee``; ``cost > fee`` is an
    extra effort cost). Each parameter is a number or a prior.

    The gradient of the likelihood is exact: a Q-value is linear in
    ``(cost, depth_cost, w)`` for a fixed optimal continuation, with the
    coefficients (expected clicks, expected click depth, expected path values)
    computed by the solver along with the values (``has_closed_form_gradient``).

    Args:
        cost: static cost per click (any real number), or a prior.
        depth_cost: extra cost per level of depth of the clicked node, or a prior.
        beta: inverse temperature ``> 0`` (per point), or a prior.
        values: ``"points"`` (the reward argument is ignored) or ``"reward"``.
        solver: ``"exact"`` (symmetric trees such as mouselab-312),
            ``"myopic"`` (any tree, approximate), ``"brute-force"`` (tiny trees)
            or a :class:`irl.envs.mouselab.MetaSolver` object (e.g. an
            ``EnvelopeSolver`` shared by many fits).

    Example:
        >>> import human_models as hm, demos
        >>> from irl.metalevel.mouselab import mouselab
        >>> env = mouselab((2, 1, 2), values=[(-1, 1), (-2, 2), (-10, 10)])  # irl.envs.make("mouselab-312") alike
        >>> person = hm.MetaBoltzmann(cost=0.8, depth_cost=0.3, beta=1.0)
        >>> traces = demos.simulate(env, person, env.true_reward, n=5, seed=0)
        >>> float(person.log_likelihood(env, env.true_reward, traces)) < 0
        True

    References:
        Callaway et al. (2018), "A resource-rational analysis of human planning",
        CogSci; Jain et al. (2023), Behavior Research Methods.
    """

    name = "meta-boltzmann"
    has_closed_form_gradient = True

    def __init__(self, cost: Any = 1.0, depth_cost: Any = 0.0, beta: Any = 1.0, *, values: str = "points",
                 solver: Any = "exact") -> None:
        self.cost = _real_param("cost", cost)
        self.depth_cost = _real_param("depth_cost", depth_cost)
        self.beta = positive_param("beta", beta)
        if values not in ("points", "reward"):
            raise HumanModelError(f"values must be 'points' or 'reward': got {values!r}")
        self.values = values
        if isinstance(solver, str) and solver not in ("exact", "myopic", "brute-force"):
            raise HumanModelError(f"unknown meta-level solver {solver!r}; known: exact, myopic, brute-force (or a "
                                  f"MetaSolver object)")
        self.solver = solver

    @property
    def time_dependent(self) -> bool:  # the policy depends on the belief, not on time
        return False

    @property
    def params(self) -> dict[str, Any]:
        return {"cost": self.cost, "depth_cost": self.depth_cost, "beta": self.beta}

    def with_solver(self, solver: Any) -> "MetaBoltzmann":
        """A copy that computes its Q-values with another solver (same parameters)."""
        new = copy.copy(self)
        new.solver = solver
        return new

    def _solver(self, meta: Any) -> Any:
        s = meta.solver(self.solver) if isinstance(self.solver, str) else self.solver
        other = getattr(s, "meta", None)
        if other is not None and other is not meta and other.signature() != meta.signature():
            raise HumanModelError("the solver given to MetaBoltzmann was built for another meta-level problem than "
                                  "the environment's (another tree, prior or horizon)")
        return s

    def _weights(self, meta: Any, reward: torch.Tensor) -> torch.Tensor:
        """Utility weights ``(..., K)`` from a reward ``(..., S, A)`` (``values='reward'``)."""
        try:
            return meta.weights_from_reward(reward)
        except MetaLevelError as e:
            raise HumanModelError(f"MetaBoltzmann(values='reward'): {e}") from None

    def _reward(self, mdp: Any, reward: Any) -> torch.Tensor:
        r = reward if isinstance(reward, torch.Tensor) else torch.from_numpy(np.array(reward, dtype=np.float64))
        if r.ndim >= 1 and r.shape[-1] == mdp.n_states and (r.ndim == 1 or r.shape[-2:] != (mdp.n_states,
                                                                                              mdp.n_actions)):
            r = r[..., None].expand(*r.shape, mdp.n_actions)
        if r.ndim < 2 or tuple(r.shape[-2:]) != (mdp.n_states, mdp.n_actions):
            raise HumanModelError(f"reward must have shape (S,) = ({mdp.n_states},) or (..., S, A) = "
                                  f"(..., {mdp.n_states}, {mdp.n_actions}): got {tuple(r.shape)}")
        return r.to(torch.float64)

    def meta_log_probs(self, mdp: Any, reward: Any, beliefs: Any) -> torch.Tensor:
        """Log-probabilities of the meta-level actions at each belief: ``(..., D, n_actions)``.

        Impossible actions (clicks on revealed nodes) get ``-inf``. Batched
        rewards ``(B, S, A)`` and batched parameters ``(B,)`` give ``(B, D, A)``.

        Args:
            mdp: an environment with a meta-level problem (``mdp.meta``).
            reward: the utility of a point per node (used with ``values="reward"``).
            beliefs: ``(D, n_nodes)`` revealed values, ``NaN`` where hidden.
        """
        meta = meta_of(mdp)
        solver = self._solver(meta)
        b = meta.check_beliefs(beliefs)
        avail = torch.from_numpy(meta.available(b))
        r = self._reward(mdp, reward)
        if r.ndim > 3:
            raise HumanModelError(f"a batch of rewards must have shape (B, S, A): got {tuple(r.shape)}")
        Br = int(r.shape[0]) if r.ndim == 3 else 0
        if self.values == "reward":
            w = self._weights(meta, r)  # (H,) or (Br, H)
        else:
            w = torch.ones(meta.n_weights, dtype=torch.float64)
        cost, dcost, beta = (_as_tensor(self._value(k)) for k in ("cost", "depth_cost", "beta"))
        B, (cs, ds, bs) = _split_batch(cost, dcost, beta)
        if B and Br and B != Br:
            raise HumanModelError(f"a batch of {Br} rewards with a batch of {B} parameters")
        reads_reward = self.values == "reward"
        n = max(B, Br if reads_reward else 0, 1)
        neg = torch.full((), -torch.inf, dtype=torch.float64)
        out = []
        for i in range(n):
            wi = w[i] if w.ndim == 2 else w
            j = i if B else 0
            phi = torch.cat([torch.stack([cs[j], ds[j]]), wi])
            q = _MetaQ.apply(phi, solver, b)
            out.append(torch.log_softmax(torch.where(avail, bs[j] * q, neg), dim=-1))
        if n > 1 or B:
            return torch.stack(out)
        if Br:  # a batch of rewards the model does not read: the same policy for each
            return out[0].expand(Br, *out[0].shape)
        return out[0]

    def meta_probs(self, mdp: Any, reward: Any, beliefs: Any) -> np.ndarray:
        """Meta-level action probabilities as numpy (no gradient)."""
        with torch.no_grad():
            return self.meta_log_probs(mdp, reward, beliefs).exp().numpy()

    def action_log_probs(self, mdp: Any, reward: Any) -> torch.Tensor:
        """Not defined: this model's policy is over computations; use :meth:`meta_log_probs`.

        Raises:
            HumanModelError: always, explaining where the policy is.
        """
        raise HumanModelError("MetaBoltzmann acts at the meta level (clicks and stop): its policy is "
                              "meta_log_probs(mdp, reward, beliefs), scored on demos.DeliberationTraces")

    def phi(self, mdp: Any, reward: Any = None) -> np.ndarray:
        """The bound parameters as the meta-level vector ``(cost, depth_cost, w_1..w_H)`` (unbatched)."""
        meta = meta_of(mdp)
        if self.values == "reward":
            r = self._reward(mdp, mdp.true_reward if reward is None else reward)
            if r.ndim != 2:
                raise HumanModelError("phi takes one reward, not a batch")
            w = self._weights(meta, r).detach().numpy()
        else:
            w = np.ones(meta.n_weights)
        return meta.params(float(self._value("cost")), float(self._value("depth_cost")), w)

    def sample(self, mdp: Any, reward: Any, n: int, rng: Any = None, *, instances: Any = None,
               participant: Any = "simulated", block: str = "simulated", **kwargs: Any) -> Any:
        """Simulate ``n`` trials of deliberation: clicks drawn from the policy until it stops, then the best path.

        Args:
            mdp: the environment (``mdp.meta``).
            reward: the utility of a point per node (with ``values="reward"``).
            n: number of trials.
            rng: seed or generator (the same seed gives the same traces).
            instances: ``(n, n_nodes)`` node rewards to deliberate on (default: drawn
                from the environment's distributions).
            participant: label of the simulated participant (one, or one per trial).
            block: block label.

        Returns:
            :class:`demos.DeliberationTraces`.
        """
        if kwargs.get("horizon") is not None or kwargs.get("initial") is not None:
            raise HumanModelError("MetaBoltzmann.sample simulates deliberation traces; horizon/initial do not apply")
        meta = meta_of(mdp)
        phi = self.phi(mdp, reward)
        beta = float(self._value("beta"))
        solver = self._solver(meta)
        return _simulate(meta, lambda b: _softmax(beta * solver.q_values(b, phi)), phi[2:], int(n), rng, instances,
                         participant, block)

    def __repr__(self) -> str:
        extra = "" if self.values == "points" else ", values='reward'"
        name = self.solver if isinstance(self.solver, str) else type(self.solver).__name__
        s = "" if self.solver == "exact" else f", solver={name!r}"
        return (f"MetaBoltzmann(cost={self.cost!r}, depth_cost={self.depth_cost!r}, beta={self.beta!r}"
                f"{extra}{s})")


class RandomClicks(BaseHumanModel):
    """Null model of deliberation: every possible meta-level action (each hidden node, or stop) equally likely.

    Example:
        >>> import irl, human_models as hm
        >>> env = irl.envs.make("mouselab-312")
        >>> p = hm.RandomClicks().meta_probs(env, env.true_reward, env.meta.initial_beliefs(1))
        >>> round(float(p[0, 0]), 4)   # 13 possible actions
        0.0769
    """

    name = "random-clicks"
    has_closed_form_gradient = True

    @property
    def time_dependent(self) -> bool:
        return False

    def meta_log_probs(self, mdp: Any, reward: Any, beliefs: Any) -> torch.Tensor:
        """``-log(number of possible actions)`` for possible actions, ``-inf`` otherwise: ``(..., D, A)``."""
        meta = meta_of(mdp)
        avail = meta.available(meta.check_beliefs(beliefs))
        lp = np.where(avail, -np.log(avail.sum(axis=1, keepdims=True)), -np.inf)
        out = torch.from_numpy(lp)
        r = reward if isinstance(reward, torch.Tensor) else torch.from_numpy(np.array(reward, dtype=np.float64))
        if r.ndim > 2:
            out = out.expand(*r.shape[:-2], *out.shape)
        return out

    def meta_probs(self, mdp: Any, reward: Any, beliefs: Any) -> np.ndarray:
        """Meta-level action probabilities as numpy."""
        return self.meta_log_probs(mdp, reward, beliefs).exp().numpy()

    def action_log_probs(self, mdp: Any, reward: Any) -> torch.Tensor:
        """Not defined (a meta-level model); use :meth:`meta_log_probs`."""
        raise HumanModelError("RandomClicks acts at the meta level: use meta_log_probs(mdp, reward, beliefs)")

    def sample(self, mdp: Any, reward: Any, n: int, rng: Any = None, *, instances: Any = None,
               participant: Any = "simulated", block: str = "simulated", **kwargs: Any) -> Any:
        """Simulate ``n`` trials of random clicking (the path is the best one in expectation)."""
        meta = meta_of(mdp)

        def policy(b: np.ndarray) -> np.ndarray:
            a = meta.available(b).astype(np.float64)
            return a / a.sum(axis=1, keepdims=True)

        return _simulate(meta, policy, np.ones(meta.n_weights), int(n), rng, instances, participant, block)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def _simulate(meta: Any, policy: Any, weights: np.ndarray, n: int, rng: Any, instances: Any, participant: Any,
              block: str) -> Any:
    """Run a meta-level policy ``beliefs (D, ...) -> probabilities (D, A)`` on instances; traces of the runs.

    Works for any :class:`irl.metalevel.MetaMDP`: the problem draws or checks
    the instances, performs the computations and packages the traces.
    """
    if n < 1:
        raise HumanModelError(f"n must be >= 1: got {n}")
    gen = np.random.default_rng(rng)
    try:
        inst = meta.sample_instances(n, gen) if instances is None else meta.check_instances(instances, n)
    except MetaLevelError as e:
        raise HumanModelError(str(e)) from None
    beliefs = meta.initial_beliefs(n)
    comps: list[list[int]] = [[] for _ in range(n)]
    outcomes: list[list[float]] = [[] for _ in range(n)]
    active = np.ones(n, bool)
    while active.any():
        rows = np.flatnonzero(active)
        p = policy(beliefs[rows])
        u = gen.random(rows.size)
        a = np.minimum((np.cumsum(p, axis=1) < u[:, None]).sum(axis=1), p.shape[1] - 1)
        a = np.where(p[np.arange(rows.size), a] > 0, a, p.argmax(axis=1))  # guard against round-off at the end
        stop = a == 0
        active[rows[stop]] = False
        go, act = rows[~stop], a[~stop]
        if go.size:
            beliefs[go], out = meta.compute(beliefs[go], act, inst[go], gen)
            for r_, c_, o_ in zip(go.tolist(), act.tolist(), out.tolist()):
                comps[r_].append(int(c_))
                outcomes[r_].append(float(o_))
    choices = meta.choose(beliefs, weights, rng=gen)
    part = np.full(n, participant).astype(str) if np.ndim(participant) == 0 else np.asarray(participant).astype(str)
    return meta.make_traces(inst, comps, outcomes, choices, participant=part, block=np.full(n, block))


# ------------------------------------------------------------------------ amplification
def amplify(human: MetaBoltzmann, mdp: Any, reward: Any, traces: Any, *,
            cost_factors: Sequence[float] = (1.0, 0.5, 0.25, 0.0), repeats: int = 20, seed: int = 0,
            judge: Any = None) -> list[dict[str, Any]]:
    """What would this person choose with more time to think? Their deliberation re-run at lower costs.

    For every trial of ``traces`` (held-out problem instances whose rewards are
    all known), the person's inferred deliberation is simulated again with the
    costs of computation multiplied by each factor (``1`` = as inferred, ``0`` =
    free thinking, same temperature and values), ``repeats`` times; the last row
    is the full-information limit (the best path by the person's values). The
    value of a choice is judged by the person's values: the chosen path's
    points weighted by their utilities (``judge``: other per-depth weights to
    judge by, e.g. the true ones of a simulated person).

    Args:
        human: the fitted :class:`MetaBoltzmann` (all parameters bound).
        mdp: the environment.
        reward: the reward the human acts on (its utilities, with ``values="reward"``).
        traces: held-out :class:`demos.DeliberationTraces` (every node reward known).
        cost_factors: multipliers of ``cost`` and ``depth_cost``.
        repeats: simulations per trial and factor.
        seed: random seed.
        judge: ``(H,)`` utilities per depth to judge choices by (default the person's own).

    Returns:
        One dict per setting plus ``"actual"`` and ``"full information"``:
        ``setting``, ``cost``, ``depth_cost``, ``mean_value`` (mean over trials of the
        chosen path's value), ``gain`` (over the actual choices), ``mean_clicks``.

    Example:
        >>> import human_models as hm, demos
        >>> from irl.metalevel.mouselab import mouselab
        >>> env = mouselab((2, 1, 2), values=[(-1, 1), (-2, 2), (-10, 10)])
        >>> person = hm.MetaBoltzmann(cost=3.0, beta=2.0)
        >>> held_out = demos.simulate(env, person, env.true_reward, n=50, seed=1)
        >>> rows = hm.amplify(person, env, env.true_reward, held_out, cost_factors=(0.25,), repeats=4)
        >>> [r["setting"] for r in rows]
        ['actual', 'cost x 0.25', 'full information']
        >>> rows[-1]["mean_value"] >= rows[0]["mean_value"]
        True
    """
    meta = meta_of(mdp)
    inst = np.asarray(meta.traces_instances(traces), dtype=np.float64)
    if not np.all(np.isfinite(inst)):
        raise HumanModelError("amplification needs held-out trials whose instances are all known (every node "
                              "reward, every success probability)")
    phi = human.phi(mdp, reward)
    w_judge = phi[2:] if judge is None else np.asarray(judge, dtype=np.float64)
    actual = meta.traces_choices(traces)
    have = actual >= 0
    if not have.any():
        raise HumanModelError("the held-out traces record no choices")
    rows_all = np.flatnonzero(have)
    actual_value = float(meta.choice_values(inst[rows_all], actual[have], w_judge).mean())
    out = [{"setting": "actual", "cost": float(phi[0]), "depth_cost": float(phi[1]), "mean_value": actual_value,
            "gain": 0.0, "mean_clicks": float(traces.n_computations[have].mean())}]
    gen = np.random.default_rng(seed)
    for f in cost_factors:
        h = human.bind(cost=float(phi[0]) * f, depth_cost=float(phi[1]) * f)
        rep = np.repeat(rows_all, int(repeats))
        sim = h.sample(mdp, reward, rep.size, rng=gen, instances=inst[rep])
        v = float(meta.choice_values(inst[rep], meta.traces_choices(sim), w_judge).mean())
        out.append({"setting": f"cost x {f:g}", "cost": float(phi[0]) * f, "depth_cost": float(phi[1]) * f,
                    "mean_value": v, "gain": v - actual_value, "mean_clicks": float(sim.n_computations.mean())})
    best = meta.best_choices(inst[rows_all], w_judge)
    v = float(meta.choice_values(inst[rows_all], best, w_judge).mean())
    out.append({"setting": "full information", "cost": 0.0, "depth_cost": 0.0, "mean_value": v,
                "gain": v - actual_value, "mean_clicks": float(meta.full_information_computations)})
    return out


# ------------------------------------------------------------------------ conformance
def _derivative_error(g: float, f0: float, up: float, dn: float, eps: float) -> tuple[float, float]:
    """Error of a derivative ``g`` against finite differences, allowing a kink at the point.

    Exact meta-level values are piecewise linear in the costs: where the optimal
    meta-level policy changes (often at round parameter values) the
    log-likelihood has a kink, and the gradient is the derivative of one side.
    Central differences then average the two sides; ``g`` is accepted if it
    matches the nearer one-sided difference when the two sides differ.

    Returns:
        ``(error, finite difference compared against)``.
    """
    central = (up - dn) / (2 * eps)
    right, left = (up - f0) / eps, (f0 - dn) / eps
    kink = abs(right - left) > 1e-3 * (1 + abs(central))
    if not kink:
        return abs(central - g), central
    side = right if abs(right - g) <= abs(left - g) else left
    return abs(side - g), side


def check_meta_human_model(model: Any, mdp: Any, *, reward: Any = None, seed: int = 0, n_traces: int = 6,
                           n_first: int = 4000, grad_params: Sequence[str] = ("cost", "depth_cost", "beta"),
                           eps: float = 1e-6) -> dict[str, Any]:
    """The conformance check of ``hm.check_human_model``, adapted to meta-level (cognition) models.

    ``hm.check_human_model`` calls this for any model with ``meta_log_probs``.
    The object-level check cannot apply as is: its rules are stated for
    object-level policies ``action_log_probs (H, S, A)`` on random tabular MDPs
    and trajectories. The same rules are checked here on a meta-level
    environment and deliberation traces: flags are booleans;
    ``meta_log_probs`` has shape ``(D, A)``, is normalised, finite exactly on
    the possible actions and ``-inf`` elsewhere; a batch of rewards gives the
    stacked single results; ``sample`` gives valid traces, the same for the same
    seed; ``log_likelihood`` equals the sum of the sampled decisions'
    log-probabilities; the first meta-level action's empirical frequencies over
    ``n_first`` simulated trials agree with the policy (simulation and
    inference use the same model); and the gradient of the log-likelihood with
    respect to the model's real parameters (and the reward, when it reads one)
    matches finite differences (central ones, or the nearer one-sided one at a
    kink: exact meta-level values are piecewise linear in the costs).

    Args:
        model: the cognition-level model (its parameters bound to numbers).
        mdp: an environment with a meta-level problem.
        reward: the reward (default ``mdp.true_reward``).
        seed: seed for samples and checks.
        n_traces: trials sampled for the likelihood and gradient checks.
        n_first: trials sampled for the frequency check.
        grad_params: parameters checked by finite differences (those the model has).
        eps: finite-difference step.

    Returns:
        ``{"max_frequency_error": ..., "grad_error": ..., "n_decisions": ...}``.

    Raises:
        human_models.ConformanceError: naming the rule that failed.

    Example:
        >>> import irl, human_models as hm
        >>> from irl.metalevel.mouselab import mouselab
        >>> env = mouselab((2, 1, 2), values=[(-1, 1), (-2, 2), (-10, 10)])
        >>> out = hm.check_meta_human_model(hm.MetaBoltzmann(cost=1.13, depth_cost=0.37, beta=0.3), env)
        >>> out["grad_error"] < 1e-5
        True
    """
    from human_models.conformance import ConformanceError

    label = type(model).__name__
    for flag in ("differentiable", "has_closed_form_gradient", "time_dependent"):
        if not isinstance(getattr(model, flag, None), bool):
            raise ConformanceError(f"{label}.{flag} must be a bool: got {getattr(model, flag, None)!r}")
    if not isinstance(getattr(model, "name", None), str):
        raise ConformanceError(f"{label}.name must be a str")
    meta = meta_of(mdp)
    r = np.array(mdp.true_reward if reward is None else reward, dtype=np.float64)
    rt = torch.from_numpy(r if r.ndim == 2 else np.repeat(r[:, None], mdp.n_actions, axis=1))
    data = model.sample(mdp, rt, n_traces, rng=seed)
    again = model.sample(mdp, rt, n_traces, rng=seed)
    if not (hasattr(data, "decisions") and hasattr(data, "log_likelihood_under")):
        raise ConformanceError(f"{label}.sample must return deliberation traces (demos.DeliberationTraces, "
                               f"demos.SamplingTraces): got {type(data).__name__}")
    data.validate(mdp.n_states, mdp.n_actions)
    same = all(np.array_equal(x, y, equal_nan=True) for x, y in zip(data.decisions(), again.decisions()))
    if not (same and np.array_equal(meta.traces_choices(data), meta.traces_choices(again))):
        raise ConformanceError(f"{label}.sample with the same seed must give the same traces")
    beliefs, actions, _ = data.decisions()
    lp = model.meta_log_probs(mdp, rt, beliefs)
    if not isinstance(lp, torch.Tensor) or tuple(lp.shape) != (beliefs.shape[0], meta.n_actions):
        raise ConformanceError(f"{label}.meta_log_probs must return a tensor of shape (D, A) = "
                               f"({beliefs.shape[0]}, {meta.n_actions}): got {getattr(lp, 'shape', type(lp))}")
    avail = meta.available(beliefs)
    lpn = lp.detach().numpy()
    if not np.all(np.isfinite(lpn[avail])) or not np.all(np.isneginf(lpn[~avail])):
        raise ConformanceError(f"{label}.meta_log_probs must be finite on possible actions and -inf on clicks of "
                               f"revealed nodes")
    norm = np.log(np.exp(lpn).sum(axis=1))
    if np.abs(norm).max() > 1e-8:
        raise ConformanceError(f"{label}: meta-level action probabilities must sum to 1: worst log-sum "
                               f"{np.abs(norm).max():.3g}")
    batch = torch.stack([rt, rt * 0.5 + 0.5])
    blp = model.meta_log_probs(mdp, batch, beliefs)
    single = torch.stack([lp, model.meta_log_probs(mdp, batch[1], beliefs)])
    if tuple(blp.shape) != (2,) + tuple(lp.shape) or not torch.allclose(blp, single, atol=1e-10):
        raise ConformanceError(f"{label}: a batch of rewards (B, S, A) must give the stacked single-reward results")
    ll = float(model.log_likelihood(mdp, rt, data))
    manual = float(lpn[np.arange(actions.size), actions].sum())
    if not np.isclose(ll, manual, rtol=1e-10, atol=1e-10):
        raise ConformanceError(f"{label}: log_likelihood {ll:.10g} != sum of the decisions' log-probabilities "
                               f"{manual:.10g}")
    # simulation and the policy agree: frequencies of the first meta-level action
    first = model.sample(mdp, rt, n_first, rng=seed + 1)
    _, first_actions, first_trial = first.decisions()
    a0 = first_actions[np.r_[True, first_trial[1:] != first_trial[:-1]]]
    freq = np.bincount(a0, minlength=meta.n_actions) / n_first
    p0 = np.exp(model.meta_log_probs(mdp, rt, meta.initial_beliefs(1)).detach().numpy()[0])
    tol = 5 * np.sqrt(np.maximum(p0 * (1 - p0), 1e-12) / n_first) + 1e-3
    worst = float(np.max(np.abs(freq - p0) - tol))
    if worst > 0:
        k = int(np.argmax(np.abs(freq - p0) - tol))
        raise ConformanceError(f"{label}: simulated first actions disagree with the policy: action {k} drawn "
                               f"{freq[k]:.4f} of the time, policy {p0[k]:.4f}")
    # gradients
    grad_err = 0.0
    if model.differentiable:
        names = [n for n in grad_params if n in getattr(model, "params", {})]
        values = {n: torch.tensor(float(getattr(model, n)), dtype=torch.float64, requires_grad=True) for n in names}
        rr = rt.clone().requires_grad_(getattr(model, "values", "points") == "reward")
        out = model.bind(**values).log_likelihood(mdp, rr, data) if values else model.log_likelihood(mdp, rr, data)
        if out.requires_grad:
            out.backward()
        f0 = float(out.detach())
        for n in names:
            g = float(values[n].grad)
            up = float(model.bind(**{n: float(getattr(model, n)) + eps}).log_likelihood(mdp, rt, data))
            dn = float(model.bind(**{n: float(getattr(model, n)) - eps}).log_likelihood(mdp, rt, data))
            err, fd = _derivative_error(g, f0, up, dn, eps)
            grad_err = max(grad_err, err)
            if err > 1e-5 * (1 + abs(fd)):
                raise ConformanceError(f"{label}: d logL / d {n} = {g:.8g} but finite differences give {fd:.8g}")
        if rr.requires_grad:
            for k, states in enumerate(meta.weight_states(), 1):
                direction = torch.zeros_like(rt)
                direction[torch.from_numpy(np.asarray(states, np.int64))] = 1.0
                g = float((rr.grad * direction).sum())
                up = float(model.log_likelihood(mdp, rt + eps * direction, data))
                dn = float(model.log_likelihood(mdp, rt - eps * direction, data))
                err, fd = _derivative_error(g, f0, up, dn, eps)
                grad_err = max(grad_err, err)
                if err > 1e-5 * (1 + abs(fd)):
                    raise ConformanceError(f"{label}: the derivative along the depth-{k} utilities is {g:.8g} but "
                                           f"finite differences give {fd:.8g}")
    return {"max_frequency_error": float(np.max(np.abs(freq - p0))), "grad_error": grad_err,
            "n_decisions": int(beliefs.shape[0])}
