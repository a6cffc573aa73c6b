"""Maximum (causal) entropy IRL as MAP over the log-joint."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import scipy.optimize
import torch

from irl.evidence import as_evidence_list
from irl.rewards import RewardModel, default_reward_model
from irl.solvers.base import LogJoint, RewardEstimate, n_observations

__all__ = ["MaxEnt"]


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

    Args:
        human: default human model for ``fit(env, data)`` (default ``Boltzmann(1.0)``).
        reward_model: maps ``theta`` to rewards; default linear in the MDP's
            features, or tabular when it has none.
        prior: a prior with ``log_prob`` (e.g. ``priors.Gaussian(0, 1)``), or
            ``None`` for maximum likelihood.
        max_iter: L-BFGS iteration limit (Adam: number of steps).
        tol: stop when the projected gradient (per demonstration step) is below this.
        callback: called as ``callback(iteration, objective, grad_norm)`` after each iteration.
        optimizer: ``"lbfgs"`` (default; small models) or ``"adam"`` (large networks, many
            evidence items): ``max_iter`` steps of Adam with learning rate ``lr``, each on
            ``batch_size`` evidence items drawn at random (default all), the log-likelihood
            scaled up to the whole data (an unbiased estimate of the log-joint). Minibatches
            need human models with fixed parameters. For many maps in several processes see
            :mod:`irl.lightning`.
        lr: Adam's learning rate.
        batch_size: evidence items per Adam step (``None``: all).
        seed: seed of the minibatch draws.

    Example:
        >>> import irl, human_models as hm, demos
        >>> env = irl.envs.make("gridworld-5x5")
        >>> data = demos.simulate(env, hm.Boltzmann(5.0), irl.envs.true_reward(env), n=50, seed=0)
        >>> est = irl.MaxEnt(human=hm.Boltzmann(5.0)).fit(env, data)
        >>> est.converged
        True

    References:
        Ziebart, Maas, Bagnell & Dey (2008), "Maximum Entropy Inverse Reinforcement
        Learning", AAAI. Ziebart, Bagnell & Dey (2010), "Modeling interaction via the
        principle of maximum causal entropy", ICML. Gleave & Toyer (2022), "A Primer
        on Maximum Causal Entropy Inverse Reinforcement Learning".
    """

    def __init__(self, human: Any = None, *, reward_model: RewardModel | None = None, prior: Any = None,
                 max_iter: int = 500, tol: float = 1e-8, callback: Callable[[int, float, float], None] | None = None,
                 optimizer: str = "lbfgs", lr: float = 1e-2, batch_size: int | None = None, seed: int = 0) -> None:
        if human is None:
            from human_models import Boltzmann

            human = Boltzmann(1.0)
        if optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"unknown optimizer {optimizer!r}; known: lbfgs, adam")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 or None: got {batch_size}")
        self.human, self.reward_model, self.prior = human, reward_model, prior
        self.max_iter, self.tol, self.callback = int(max_iter), float(tol), callback
        self.optimizer, self.lr, self.seed = optimizer, float(lr), seed
        self.batch_size = None if batch_size is None else int(batch_size)

    def fit(self, env_or_evidence: Any, data: Any = None, *, init: Any = None) -> RewardEstimate:
        """Fit to ``(env, data)``, one :class:`irl.Evidence`, or a list of them.

        Args:
            env_or_evidence: an MDP (then ``data`` is required) or evidence item(s).
            data: observations in ``env`` (e.g. :class:`demos.Trajectories`).
            init: initial ``theta`` (default zeros).

        Returns:
            :class:`~irl.solvers.base.RewardEstimate`.

        Raises:
            TypeError: bad arguments, or a human model that is not differentiable.
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
            if self.callback is not None:
                self.callback(rec["iteration"], rec["objective"], rec["grad_norm"])

        t0 = time.perf_counter()
        if joint.dim == 0:  # nothing to fit (a fixed human model, a reward model without parameters): just score
            res = scipy.optimize.OptimizeResult(x=x0, success=True, jac=None, message="no free parameters")
        elif self.optimizer == "adam":
            res = self._adam(joint, evidence, model, x0, scale, history)
            n_eval = len(history)  # one evaluation per step, plus the final full gradient (in f)
            res.jac = f(res.x)[1]  # the full objective's gradient at the end decides "converged"
        else:
            res = scipy.optimize.minimize(f, x0, jac=True, method="L-BFGS-B", callback=cb,
                                          options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-15,
                                                   "maxcor": 20})
        x = torch.tensor(res.x, dtype=torch.float64)
        with torch.no_grad():
            ll = float(joint.log_likelihood(x))
            lp = float(joint.log_prior(x))
            reward = model.reward_for(evidence[0].mdp, x[:model.n_params]).numpy().copy()
            human_params: dict[str, Any] = {k: float(v) for k, v in joint.human_values(x).items()}
        human_params.update(joint.discrete_posterior(x))
        if hasattr(model, "set_theta"):  # a network keeps its trained weights: est.reward_model.reward(other_map)
            model.set_theta(x[:model.n_params])
        grad_ok = float(np.abs(res.jac).max()) <= max(self.tol, 1e-5) if res.jac is not None else False
        return RewardEstimate(
            reward=reward, theta=res.x[:model.n_params].copy(), log_likelihood=ll, log_prior=lp,
            human_params=human_params,
            converged=bool(res.success or grad_ok), history=history, param_names=model.param_names(),
            info={"solver": "maxent", "human": repr(self.human), "prior": repr(self.prior),
                  "evaluations": n_eval, "message": str(res.message),
                  "seconds": time.perf_counter() - t0, "n_evidence": len(evidence), "n_observations": n_obs,
                  "n_free_params": joint.dim, "x": res.x.tolist()}, reward_model=model)

    def _adam(self, joint: LogJoint, evidence: list, model: RewardModel, x0: np.ndarray, scale: float,
              history: list[dict[str, float]]) -> scipy.optimize.OptimizeResult:
        """``max_iter`` Adam steps on (minibatch estimates of) the log-joint per observation."""
        N = len(evidence)
        B = N if self.batch_size is None else min(self.batch_size, N)
        if B < N and (joint.dim != joint.n_reward or any(joint.discrete)):
            raise ValueError(f"minibatches (batch_size={B} < {N} evidence items) need human models with fixed "
                             f"parameters: {joint.param_names()[joint.n_reward:] + joint.discrete_names()} have "
                             f"priors; use batch_size=None")
        rng = np.random.default_rng(self.seed)
        x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([x], lr=self.lr)
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
        return scipy.optimize.OptimizeResult(x=x.detach().numpy().copy(), success=False, jac=None,
                                             message=f"adam: {self.max_iter} steps (lr {self.lr}, batch {B} of {N})")
