"""Maximum (causal) entropy IRL as MAP over the log-joint: multi-start, nested starts, identifiability."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import scipy.optimize
import torch

from irl.evidence import Evidence, as_evidence_list
from irl.rewards import RewardModel, default_reward_model
from irl.solvers.base import (FlatDirection, IdentifiabilityWarning, LocalOptimaWarning, LogJoint, RewardEstimate,
                              check_option, check_reward_prior, n_observations)

__all__ = ["MaxEnt", "nll_hessian", "find_flat_directions"]

#: Unconstrained coordinate used for a human parameter started on the edge of its support
#: (``epsilon = 0`` of a ``Uniform(0, 1)`` prior becomes ``sigmoid(-10) = 4.5e-5``).
_EDGE = 10.0


class MaxEnt:
    """Maximum-entropy IRL: the reward parameters that maximise prior x likelihood.

    With a Boltzmann human, demonstrations and no prior this is maximum causal
    entropy IRL; with a prior it is MAP; with any other differentiable human model
    it is maximum likelihood under that model. The optimiser is L-BFGS (scipy) on
    the log-joint; gradients come from autograd, which for the Boltzmann models
    is the closed-form occupancy pass: the exact gradient of the demonstrations'
    causal log-likelihood, which for deterministic dynamics is "empirical minus
    expected feature counts" (with stochastic dynamics that identity holds only
    in expectation).

    **Several starts.** Biased human models make the objective non-convex, so the
    fit runs L-BFGS from several points and keeps the best:

    * ``init`` (or zeros for the reward and each human prior's central value);
    * *nested starts*: a human model that contains simpler ones (declared by
      ``human.nested_models(mdp)``, e.g. ``Noisy(m)`` is ``m`` at ``epsilon = 0``;
      see :func:`human_models.nesting`) is started at each simpler model's
      optimum, which is fitted first (or given with ``fit(..., nested_fits=...)``,
      as :func:`irl.compare` does), so it can never end below the model it
      contains; and once more from the simpler model's reward with its own
      human parameters at their central values (its optimum often lies in
      another basin than the edge ``epsilon = 0``);
    * ``n_starts - 1`` random starts (reward parameters from the prior, or standard
      normal without one; human parameters from their priors).

    ``n_starts`` defaults to 1 when the problem is concave (every human model
    ``concave_in_reward`` with fixed parameters, a linear reward model, demonstrations)
    and to 3 otherwise. ``RewardEstimate.n_starts_at_best`` says how many starts
    reached the best value within ``start_tol + 1e-6 |value|``; ``converged`` is
    ``False`` when only one of several starts did (the best may not be global)
    or when a nested model's optimum fits better, and ``problems`` says why.

    **Identifiability.** At the optimum the Hessian of the negative log-likelihood
    (prior excluded) is computed by central differences of the gradient, all
    ``2D`` perturbed points in one batched planner call, and eigen-decomposed.
    Eigenvalues below ``flat_tol`` times the largest are *flat directions*
    (``RewardEstimate.flat_directions``, with the names of the parameters they
    mix); an :class:`~irl.solvers.base.IdentifiabilityWarning` reports them.
    Canonical point: along flat directions that are exact invariances of the
    reward parameters (the likelihood does not change when moving along them,
    as for potential shaping), a maximum-likelihood fit (no prior, or
    ``priors.Flat``) is moved to the *minimum-norm* point, so the answer does not
    depend on where L-BFGS stopped; with a proper prior the prior already picks
    the point (the MAP). Compare rewards with shaping-invariant metrics
    (:func:`irl.metrics.epic_distance`).

    Args:
        human: default human model for ``fit(env, data)`` (default ``Boltzmann(1.0)``).
        reward_model: maps ``theta`` to rewards; default linear in the MDP's
            features, or tabular when it has none.
        prior: a prior with ``log_prob`` (e.g. ``priors.Gaussian(0, 1)``), or
            ``None`` for maximum likelihood.
        max_iter: L-BFGS iteration limit (per start), an integer ``>= 1``.
        tol: stop when the projected gradient (per demonstration step) is below
            this, a finite number ``>= 0``. A fit whose log-joint is not finite
            at the end is never reported as converged.
        callback: called as ``callback(iteration, objective, grad_norm)`` after each
            iteration (the count restarts at each start).
        n_starts: the ``init`` start plus ``n_starts - 1`` random ones (``None``: 1 for
            concave problems, 3 otherwise); nested starts come on top.
        seed: seed of the random starts (and of Adam's minibatch draws).
        nested: start at the optimum of each nested model.
        start_tol: absolute tolerance (log-joint units) for "reached the best value".
        identifiability: compute flat directions and the canonical point.
        flat_tol: relative eigenvalue threshold of a flat direction.
        optimizer: ``"lbfgs"`` (default; small models) or ``"adam"`` (large networks, many
            evidence items): ``max_iter`` steps of Adam per start with learning rate ``lr``,
            each on ``batch_size`` evidence items drawn at random (default all), the
            log-likelihood scaled up to the whole data (an unbiased estimate of the
            log-joint); "converged" then means the full gradient at the end is below
            ``tol``. Minibatches need human models with fixed parameters. With Adam,
            ``n_starts`` defaults to 1. For many maps in several processes see
            :mod:`irl.lightning`.
        lr: Adam's learning rate.
        batch_size: evidence items per Adam step (``None``: all).
        check: warn (:class:`~irl.solvers.base.LocalOptimaWarning`,
            :class:`~irl.solvers.base.IdentifiabilityWarning`) about ``problems``.

    Raises:
        ValueError: ``n_starts < 1``, a negative ``start_tol``, ``flat_tol`` outside ``(0, 1)``, an
            unknown ``optimizer`` or ``batch_size < 1``.

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("gridworld-5x5")
        >>> data = demos.simulate(env, hm.Boltzmann(5.0), irl.envs.true_reward(env), n=50, seed=0)
        >>> est = irl.MaxEnt(human=hm.Boltzmann(5.0), check=False).fit(env, data)
        >>> est.converged, len(est.starts), est.identifiable  # one-hot terrain: a constant shift is flat
        (True, 1, False)
        >>> sorted(est.flat_directions[0].names), abs(float(est.theta.sum())) < 1e-6  # minimum norm along it
        (['goal', 'mud', 'plain', 'water'], True)

    References:
        Ziebart, Maas, Bagnell & Dey (2008), "Maximum Entropy Inverse Reinforcement
        Learning", AAAI. Ziebart, Bagnell & Dey (2010), "Modeling interaction via the
        principle of maximum causal entropy", ICML. Gleave & Toyer (2022), "A Primer
        on Maximum Causal Entropy Inverse Reinforcement Learning". Kim, Garg, Shiragur
        & Ermon (2021), "Reward Identification in Inverse Reinforcement Learning", ICML.
        Skalse, Farrugia-Roberts, Russell, Abate & Gleave (2023), "Invariance in Policy
        Optimisation and Partial Identifiability in Reward Learning", ICML.
    """

    def __init__(self, human: Any = None, *, reward_model: RewardModel | None = None, prior: Any = None,
                 max_iter: int = 500, tol: float = 1e-8, callback: Callable[[int, float, float], None] | None = None,
                 n_starts: int | None = None, seed: int = 0, nested: bool = True, start_tol: float = 1e-2,
                 identifiability: bool = True, flat_tol: float = 1e-6, check: bool = True,
                 optimizer: str = "lbfgs", lr: float = 1e-2, batch_size: int | None = None) -> None:
        if human is None:
            from human_models import Boltzmann

            human = Boltzmann(1.0)
        if n_starts is not None and (isinstance(n_starts, bool) or int(n_starts) != n_starts or n_starts < 1):
            raise ValueError(f"n_starts must be an integer >= 1 or None (automatic): got {n_starts!r}")
        if not (math.isfinite(float(start_tol)) and float(start_tol) >= 0):
            raise ValueError(f"start_tol must be a finite number >= 0: got {start_tol!r}")
        if not 0.0 < float(flat_tol) < 1.0:
            raise ValueError(f"flat_tol must lie in (0, 1): got {flat_tol!r}")
        if optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"unknown optimizer {optimizer!r}; known: lbfgs, adam")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or None: got {batch_size!r}")
        check_reward_prior(prior)
        if callback is not None and not callable(callback):
            raise TypeError(f"MaxEnt callback must be callable(iteration, objective, grad_norm) or None: "
                            f"got {type(callback).__name__}")
        self.human, self.reward_model, self.prior = human, reward_model, prior
        self.max_iter = check_option("MaxEnt", "max_iter", max_iter, integer=True, minimum=1)
        self.tol = check_option("MaxEnt", "tol", tol, minimum=0.0)
        self.callback = callback
        self.n_starts = None if n_starts is None else int(n_starts)
        self.seed = check_option("MaxEnt", "seed", seed, integer=True, minimum=0)
        self.nested, self.start_tol = bool(nested), float(start_tol)
        self.identifiability, self.flat_tol, self.check = bool(identifiability), float(flat_tol), bool(check)
        self.optimizer, self.lr = optimizer, check_option("MaxEnt", "lr", lr, minimum=0.0, exclusive=True)
        self.batch_size = None if batch_size is None else int(batch_size)

    # ------------------------------------------------------------------ fit
    def fit(self, env_or_evidence: Any, data: Any = None, *, init: Any = None,
            nested_fits: Sequence[tuple[Any, RewardEstimate]] = ()) -> RewardEstimate:
        """Fit to ``(env, data)``, one :class:`irl.Evidence`, or a list of them.

        Args:
            env_or_evidence: an MDP (then ``data`` is required) or evidence item(s).
            data: observations in ``env`` (e.g. :class:`demos.Trajectories`).
            init: initial ``theta`` (default zeros).
            nested_fits: ``(human model, RewardEstimate)`` pairs fitted on the same
                evidence; those the human model contains (:func:`human_models.nesting`)
                become starts, and declared nested models among them are not fitted again.

        Returns:
            :class:`~irl.solvers.base.RewardEstimate`.

        Raises:
            TypeError: bad arguments, or a human model that is not differentiable.
            ValueError: ``init`` of the wrong shape.
        """
        evidence = as_evidence_list(env_or_evidence, data, self.human)
        for ev in evidence:
            if not getattr(ev.human, "differentiable", False):
                raise TypeError(f"MaxEnt needs differentiable human models: {type(ev.human).__name__} is not "
                                f"(use a sampler-based solver)")
        model = self.reward_model or default_reward_model(evidence[0].mdp)
        joint = LogJoint(evidence, model, self.prior)
        n_obs = sum(n_observations(ev.observation) for ev in evidence)
        scale = 1.0 / max(n_obs, 1)
        x0 = joint.initial_point().numpy()
        if init is not None:
            given = np.asarray(init, dtype=np.float64).ravel()
            if given.shape not in ((model.n_params,), (joint.dim,)):
                raise ValueError(f"init must have shape ({model.n_params},) (reward) or ({joint.dim},) "
                                 f"(reward + unconstrained human parameters): got {given.shape}")
            x0[:given.size] = given
        t0 = time.perf_counter()
        starts: list[tuple[str, np.ndarray]] = [("init", x0)]
        nested = self._nested_starts(joint, evidence, model, nested_fits) if self.nested and joint.dim else []
        for label, _, est, start, _ in nested:
            starts.append((f"nested:{label}", start))
            # the nested reward with this model's own human parameters at their central values: the
            # containing model's optimum often lies in another basin than the edge (epsilon = 0) it starts on
            centre = np.concatenate([est.theta, x0[model.n_params:]])
            if not np.array_equal(centre, start):
                starts.append((f"nested:{label}+centre", centre))
        n_random = (self._default_n_starts(joint, model, self.optimizer) if self.n_starts is None
                    else self.n_starts) - 1
        rng = np.random.default_rng(self.seed)
        starts += [("random", self._random_start(joint, rng)) for _ in range(n_random if joint.dim else 0)]
        runs = [dict(self._run(joint, evidence, model, x, scale, may_fail=name == "random"), start=name)
                for name, x in starts]
        best = max(runs, key=lambda r: r["value"] if math.isfinite(r["value"]) else -math.inf)
        reach = self.start_tol + 1e-6 * abs(best["value"])
        n_at_best = sum(1 for r in runs if r["value"] >= best["value"] - reach)
        x = torch.tensor(best["x"], dtype=torch.float64)
        names = joint.param_names()
        flat: list[FlatDirection] = []
        if self.identifiability and 0 < joint.dim <= _MAX_HESSIAN_DIM:
            x, flat = find_flat_directions(joint, x, names, rel_tol=self.flat_tol,
                                           canonicalise=_improper(self.prior))
        with torch.no_grad():
            ll = float(joint.log_likelihood(x))
            lp = float(joint.log_prior(x))
            reward = model.reward_for(evidence[0].mdp, x[:model.n_params]).numpy().copy()
            human_params: dict[str, Any] = {k: float(v) for k, v in joint.human_values(x).items()}
        human_params.update(joint.discrete_posterior(x))
        problems = self._problems(runs, best, n_at_best, nested, ll, reach, flat)
        converged = best["converged"] and not any(p.startswith(("only ", "nested ")) for p in problems)
        if self.check:
            for p in problems:
                warnings.warn(p, IdentifiabilityWarning if p.startswith("flat ") else LocalOptimaWarning,
                              stacklevel=2)
        if hasattr(model, "set_theta"):  # a network keeps its trained weights: est.reward_model.reward(other_map)
            model.set_theta(x[:model.n_params])
        xs = x.numpy()
        return RewardEstimate(
            reward=reward, theta=xs[:model.n_params].copy(), log_likelihood=ll, log_prior=lp,
            human_params=human_params, converged=bool(converged), history=best["history"], param_names=names[
                :model.n_params],
            starts=[{"start": r["start"], "log_joint": r["value"], "log_likelihood": r["log_likelihood"],
                     "converged": r["converged"]} for r in runs],
            n_starts_at_best=n_at_best, flat_directions=flat, problems=problems,
            info={"solver": "maxent", "human": repr(joint.humans[0] if len(joint.humans) == 1 else self.human),
                  "prior": repr(self.prior), "evaluations": sum(r["evaluations"] for r in runs),
                  "message": best["message"], "seconds": time.perf_counter() - t0, "n_evidence": len(evidence),
                  "n_observations": n_obs, "n_free_params": joint.dim, "x": xs.tolist(), "best_start": best["start"]},
            reward_model=model)

    def _run(self, joint: LogJoint, evidence: list, model: RewardModel, x0: np.ndarray, scale: float, *,
             may_fail: bool = False) -> dict[str, Any]:
        """One optimiser run from ``x0`` with the chosen optimizer (a dict as :func:`_lbfgs` returns)."""
        if self.optimizer == "lbfgs":
            return _lbfgs(joint, x0, scale, self.max_iter, self.tol, self.callback, may_fail=may_fail)
        return self._adam(joint, evidence, model, x0, scale)

    # ------------------------------------------------------------------ starts
    @staticmethod
    def _default_n_starts(joint: LogJoint, model: RewardModel, optimizer: str = "lbfgs") -> int:
        if optimizer == "adam":  # a network trained by stochastic steps: restarts are the user's choice
            return 1
        concave = (getattr(model, "linear", False) and not joint.continuous and not any(joint.discrete)
                   and all(getattr(h, "concave_in_reward", False) for h in joint.humans)
                   and all(getattr(ev.observation, "kind", None) == "trajectories" for ev in joint.evidence))
        return 1 if concave else 3

    def _nested_starts(self, joint: LogJoint, evidence: list[Evidence], model: RewardModel,
                       given: Sequence[tuple[Any, RewardEstimate]]) -> list[tuple[str, Any, RewardEstimate, np.ndarray,
                                                                                  Any]]:
        """``(label, nested model, its fit, start x, NestingMatch)`` for each model the (single) human model contains."""
        from human_models.base import nesting

        if len(joint.humans) != 1:
            return []
        human, mdp = joint.humans[0], evidence[0].mdp
        out, seen = [], {repr(human)}
        for special, est in given:
            match = nesting(human, special, mdp)
            if match is not None and repr(special) not in seen:
                seen.add(repr(special))
                out.append((repr(special), special, est, _start_from(joint, match, special, est), match))
        declared = getattr(human, "nested_models", None)
        for nest in (declared(mdp) if declared is not None else ()):
            if repr(nest.model) in seen:
                continue
            match = nesting(human, nest.model, mdp)
            if match is None or not getattr(nest.model, "differentiable", False):
                continue
            seen.add(repr(nest.model))
            child = MaxEnt(nest.model, reward_model=model, prior=self.prior, max_iter=self.max_iter, tol=self.tol,
                           seed=self.seed, start_tol=self.start_tol, identifiability=False, check=False,
                           optimizer=self.optimizer, lr=self.lr, batch_size=self.batch_size)
            est = child.fit([Evidence(ev.mdp, ev.observation, nest.model) for ev in evidence], nested_fits=given)
            out.append((repr(nest.model), nest.model, est, _start_from(joint, match, nest.model, est), match))
        return out

    def _random_start(self, joint: LogJoint, rng: np.random.Generator) -> np.ndarray:
        """Reward parameters from the prior (standard normal without a proper one), human parameters from theirs."""
        theta = None
        if not _improper(self.prior):
            try:
                theta = self.prior.sample((joint.n_reward,), seed=int(rng.integers(2 ** 31))).numpy()
            except (AttributeError, TypeError, ValueError, NotImplementedError):
                theta = None
        if theta is None or theta.shape != (joint.n_reward,) or not np.all(np.isfinite(theta)):
            theta = rng.normal(0.0, 1.0, joint.n_reward)
        u = []
        for _, _, pr in joint.continuous:
            try:
                v = pr.to_unconstrained(pr.sample((), seed=int(rng.integers(2 ** 31))))
            except (TypeError, ValueError, NotImplementedError):
                v = pr.to_unconstrained(pr.initial_value()) + rng.normal()
            u.append(_finite(float(v)))
        return np.concatenate([theta, np.asarray(u, dtype=np.float64)])

    def _problems(self, runs: list[dict], best: dict, n_at_best: int, nested: list, ll: float, reach: float,
                  flat: list[FlatDirection]) -> list[str]:
        out = []
        finished = [r for r in runs if not r.get("failed")]
        if len(finished) > 1 and n_at_best < 2:
            others = sorted((r["value"] for r in finished if r is not best), reverse=True)
            out.append(f"only 1 of {len(finished)} optimiser starts reached the best log-joint {best['value']:.4f} "
                       f"(start {best['start']!r}); the others stopped at "
                       f"{', '.join(f'{v:.4f}' for v in others[:5])}: the objective has several optima and the best "
                       f"found may not be the global one; raise n_starts (`--n-starts`) or give init")
        failed = [r["message"] for r in runs if r.get("failed")]
        if failed:
            out.append(f"skipped {len(failed)} random start(s) the model refused ({failed[0]})")
        for label, _, est, _, match in nested:
            bound = est.log_likelihood + match.log_mass  # this model's log-likelihood can reach at least this
            if bound > ll + reach:
                out.append(f"nested model {label} fits better (log-likelihood {est.log_likelihood:.4f}"
                           f"{f' + log prior mass {match.log_mass:.4f}' if match.log_mass else ''}) than this "
                           f"model ({ll:.4f}), which contains it: the optimiser did not find this model's optimum"
                           f"{' (or the human parameters prior pulls it away)' if self.prior is not None else ''}")
        if flat:
            exact = sum(d.exact for d in flat)
            rule = ("moved to the minimum-norm point along them" if _improper(self.prior)
                    else "the prior picks the point along them")
            out.append(f"flat directions: the log-likelihood does not change along {len(flat)} direction(s) of the "
                       f"parameters ({exact} exact invariance(s), {rule}), e.g. {flat[0].describe()}; the data do not "
                       f"determine the reward along them: compare rewards with irl.metrics.epic_distance, "
                       f"not raw correlation")
        return out

    def _adam(self, joint: LogJoint, evidence: list, model: RewardModel, x0: np.ndarray,
              scale: float) -> dict[str, Any]:
        """``max_iter`` Adam steps on (minibatch estimates of) the log-joint per observation, as a run record."""
        N = len(evidence)
        B = N if self.batch_size is None else min(self.batch_size, N)
        if B < N and (joint.dim != joint.n_reward or any(joint.discrete)):
            raise ValueError(f"minibatches (batch_size={B} < {N} evidence items) need human models with fixed "
                             f"parameters: {joint.param_names()[joint.n_reward:] + joint.discrete_names()} have "
                             f"priors; use batch_size=None")
        rng = np.random.default_rng(self.seed)
        x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([x], lr=self.lr)
        history: list[dict[str, float]] = []
        for it in range(self.max_iter):
            sub = joint if B == N else LogJoint([evidence[i] for i in rng.choice(N, B, replace=False)], model,
                                                self.prior)
            obj = sub.log_prior(x) + sub.log_likelihood(x) * (N / B)
            opt.zero_grad()
            (-obj * scale).backward()
            g = x.grad.detach()
            opt.step()
            rec = {"iteration": it + 1, "objective": float(obj.detach()), "grad_norm": float(g.abs().max())}
            history.append(rec)
            if self.callback is not None:
                self.callback(rec["iteration"], rec["objective"], rec["grad_norm"])
        xe = x.detach().clone().requires_grad_(True)  # the full objective's gradient at the end decides "converged"
        value_t = joint(xe, jacobian=False)
        (-value_t * scale).backward()
        value = float(value_t.detach())
        with torch.no_grad():
            ll = float(joint.log_likelihood(xe))
        grad_ok = float(xe.grad.abs().max()) <= max(self.tol, 1e-5)
        return {"x": xe.detach().numpy().copy(), "value": value if math.isfinite(value) else -math.inf,
                "log_likelihood": ll, "converged": grad_ok and math.isfinite(value),
                "message": f"adam: {self.max_iter} steps (lr {self.lr}, batch {B} of {N})", "history": history,
                "evaluations": self.max_iter + 1}


# ---------------------------------------------------------------------- helpers
#: Largest number of fitted coordinates for which the Hessian is computed (2D points per call).
_MAX_HESSIAN_DIM = 400


def _improper(prior: Any) -> bool:
    from priors import Flat

    return prior is None or isinstance(prior, Flat)


def _finite(u: float) -> float:
    return u if math.isfinite(u) else math.copysign(_EDGE, u) if not math.isnan(u) else 0.0


def _fitted_values(special: Any, est: RewardEstimate) -> dict[str, Any]:
    """The nested model's parameter values at its fit: fixed numbers, and fitted continuous ones."""
    from priors import is_prior

    vals = {k: v for k, v in getattr(special, "params", {}).items() if not is_prior(v)}
    label = getattr(special, "name", type(special).__name__)
    for key, v in est.human_params.items():
        if key.startswith(label + ".") and not isinstance(v, dict):
            vals[key[len(label) + 1:]] = v
    return vals


def _start_from(joint: LogJoint, match: Any, special: Any, est: RewardEstimate) -> np.ndarray:
    """The containing model's ``x`` at the nested model's optimum: its reward, its human parameter values."""
    x = joint.initial_point().numpy().copy()
    x[:joint.n_reward] = est.theta
    fitted = _fitted_values(special, est)
    for j, (_, name, pr) in enumerate(joint.continuous):
        v = match.at.get(name, fitted.get(name))
        if v is None:
            continue
        try:
            u = float(pr.to_unconstrained(torch.as_tensor(float(v), dtype=torch.float64)))
        except (TypeError, ValueError):
            continue
        x[joint.n_reward + j] = _finite(u)
    return x


def _lbfgs(joint: LogJoint, x0: np.ndarray, scale: float, max_iter: int, tol: float,
           callback: Callable[[int, float, float], None] | None, *, may_fail: bool = False) -> dict[str, Any]:
    """One L-BFGS run on ``-log_joint * scale`` from ``x0``.

    With ``may_fail`` (random starts), a start where the model refuses the parameters
    (a ``ValueError``, e.g. a utility outside the model's domain) is recorded as failed
    (value ``-inf``) instead of ending the fit.
    """
    if may_fail:
        try:
            return _lbfgs(joint, x0, scale, max_iter, tol, callback)
        except (ValueError, ArithmeticError) as e:
            return {"x": np.asarray(x0, dtype=np.float64).copy(), "value": -math.inf, "log_likelihood": -math.inf,
                    "converged": False, "message": f"start failed: {e}", "history": [], "evaluations": 0,
                    "failed": True}
    history: list[dict[str, float]] = []
    n_eval = 0
    last: dict[str, Any] = {}

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal n_eval
        n_eval += 1
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        val = joint(xt, jacobian=False)
        (-val * scale).backward()
        g = xt.grad.numpy().copy()
        last.update(x=x.copy(), value=float(val.detach()), grad=g)
        return -float(val.detach()) * scale, g

    def cb(x: np.ndarray) -> None:
        if not np.array_equal(x, last.get("x")):
            f(x)
        g = last["grad"]
        rec = {"iteration": len(history) + 1, "objective": last["value"], "grad_norm": float(np.abs(g).max())}
        history.append(rec)
        if callback is not None:
            callback(rec["iteration"], rec["objective"], rec["grad_norm"])

    if joint.dim == 0:  # nothing to fit (a fixed human model, a reward model without parameters): just score
        res = scipy.optimize.OptimizeResult(x=x0, success=True, jac=None, message="no free parameters")
    else:
        res = scipy.optimize.minimize(f, x0, jac=True, method="L-BFGS-B", callback=cb,
                                      options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 20})
    x = torch.tensor(res.x, dtype=torch.float64)
    with torch.no_grad():
        value = float(joint(x, jacobian=False))
        ll = float(joint.log_likelihood(x))
    grad_ok = float(np.abs(res.jac).max()) <= max(tol, 1e-5) if res.jac is not None else False
    message = str(res.message)
    if not math.isfinite(value):  # a gradient of 0 at log-joint -inf (outside the prior's support) is no optimum
        message = (f"the log-joint is not finite at the end (log-likelihood {ll}): not converged; check the prior's "
                   f"support and the data ({message})")
    return {"x": res.x.copy(), "value": value if math.isfinite(value) else -math.inf, "log_likelihood": ll,
            "converged": bool(res.success or grad_ok) and math.isfinite(value), "message": message,
            "history": history, "evaluations": n_eval}


def nll_hessian(joint: LogJoint, x: Any, *, step: float = 1e-4, max_batch: int | None = None) -> np.ndarray:
    """Hessian ``(D, D)`` of the negative log-likelihood at ``x`` by central differences of its gradient.

    The ``2D`` points ``x +- step e_i`` are evaluated as one batch of reward
    hypotheses (in chunks of ``max_batch`` points), so the planner runs once per chunk.

    Args:
        joint: the log-joint (its prior is not included).
        x: ``(D,)`` point.
        step: finite-difference step in the coordinates of ``x``.
        max_batch: largest batch per planner call (default: about 2e7 numbers of policy).

    Returns:
        Symmetric ``(D, D)`` array.

    Example:
        >>> import irl, human_models as hm, demos, torch
        >>> env = irl.envs.make("gridworld-5x5")
        >>> d = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=20, seed=0)
        >>> joint = irl.LogJoint([irl.Evidence(env, d, hm.Boltzmann(2.0))], irl.rewards.LinearReward.from_mdp(env))
        >>> H = irl.solvers.maxent.nll_hessian(joint, torch.zeros(joint.dim))
        >>> H.shape, bool(abs(H - H.T).max() < 1e-9)
        ((4, 4), True)
    """
    x = torch.as_tensor(x, dtype=torch.float64).detach()
    D = int(x.shape[-1])
    mdp = joint.evidence[0].mdp
    per_point = mdp.n_states * mdp.n_actions * max(int(mdp.horizon or 1), 1)
    chunk = max_batch or max(1, int(2e7 // per_point))
    pts = torch.cat([x + step * torch.eye(D, dtype=torch.float64), x - step * torch.eye(D, dtype=torch.float64)])
    grads = []
    for i in range(0, 2 * D, chunk):
        X = pts[i:i + chunk].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(joint.log_likelihood(X).sum(), X)
        grads.append(g)
    g = torch.cat(grads).numpy()
    H = -(g[:D] - g[D:]) / (2.0 * step)
    return 0.5 * (H + H.T)


def find_flat_directions(joint: LogJoint, x: torch.Tensor, names: list[str], *, rel_tol: float = 1e-6,
                         canonicalise: bool = True) -> tuple[torch.Tensor, list[FlatDirection]]:
    """Flat directions of the log-likelihood at ``x`` and, optionally, the canonical point along them.

    A flat direction is an eigenvector of :func:`nll_hessian` whose eigenvalue is at
    most ``rel_tol`` times the largest. It is *exact* when moving ``max(1, |theta|)``
    along it either way changes the log-likelihood by less than ``1e-9 * max(1, |log L|)``
    and it moves only reward parameters (a linear invariance such as potential shaping). With
    ``canonicalise``, ``theta`` is projected onto the orthogonal complement of the exact
    directions (the minimum-norm point along them), if that leaves the log-likelihood
    unchanged.

    Returns:
        ``(x, directions)``: the (canonical) point and the flat directions, flattest first.
    """
    H = nll_hessian(joint, x)
    w, V = np.linalg.eigh(H)
    top = float(np.max(np.abs(w))) if w.size else 0.0
    if top <= 0:
        return x, []
    P = joint.n_reward
    with torch.no_grad():
        ll0 = float(joint.log_likelihood(x))
    same = 1e-9 * max(1.0, abs(ll0))

    def unchanged(points: torch.Tensor) -> bool:
        with torch.no_grad():
            return bool(torch.all((joint.log_likelihood(points) - ll0).abs() <= same))

    flat = []
    for i in np.flatnonzero(w <= rel_tol * top):
        v = V[:, i] * (np.sign(V[np.argmax(np.abs(V[:, i])), i]) or 1.0)
        reward_only = float(np.linalg.norm(v[P:])) < 1e-6
        vt = torch.from_numpy(v) * max(1.0, float(x[:P].norm()))  # far enough to leave a saturated plateau
        exact = reward_only and unchanged(torch.stack([x + vt, x - vt]))
        big = np.flatnonzero(np.abs(v) >= 0.1 * np.abs(v).max())
        big = big[np.argsort(-np.abs(v[big]), kind="stable")]
        flat.append(FlatDirection(vector=v, eigenvalue=float(w[i]), names=[names[j] for j in big],
                                  weights=[float(v[j]) for j in big], exact=bool(exact)))
    exact_dirs = [d.vector[:P] for d in flat if d.exact]
    if canonicalise and exact_dirs:
        B = np.linalg.qr(np.stack(exact_dirs, axis=1))[0]  # (P, k) orthonormal basis
        theta = x[:P].numpy()
        xc = x.clone()
        xc[:P] = torch.from_numpy(theta - B @ (B.T @ theta))
        if unchanged(xc[None]):
            x = xc
    return x, flat
