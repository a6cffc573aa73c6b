"""Bayesian IRL: sample the log-joint of reward and human parameters."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from irl.evidence import as_evidence_list
from irl.posterior import Posterior
from irl.rewards import RewardModel, default_reward_model
from irl.solvers import samplers as _samplers
from irl.solvers.base import LogJoint

__all__ = ["BayesianIRL", "SAMPLERS"]

#: Sampler names accepted by :class:`BayesianIRL`.
SAMPLERS = ("hmc", "policywalk", "nuts")


class BayesianIRL:
    """Bayesian IRL: a posterior over the reward and the human's own parameters.

    The target is the design's log-joint (:class:`~irl.solvers.base.LogJoint`),
    ``log p(theta) + sum_k log p(phi_k) + sum_i log p(evidence_i | theta, phi)``,
    sampled in the unconstrained space ``x = [theta, u]`` (human parameters given
    as priors, e.g. ``hm.Boltzmann(beta=priors.LogNormal(0, 1))``, are mapped by
    ``biject_to`` and reported back in their own space; discrete ones are summed
    out and reported as posterior tables). Every human model works: the
    gradient of a Boltzmann model is its closed-form occupancy pass, other
    differentiable models use autograd, and non-differentiable ones can use
    PolicyWalk.

    Samplers:

    * ``"hmc"`` (default): Hamiltonian Monte Carlo in which all chains are
      advanced together, one batched planner call per leapfrog step
      (:func:`irl.solvers.samplers.hmc`: per-chain dual-averaging step size,
      diagonal mass matrix, ChEES-tuned jittered trajectory length).
    * ``"policywalk"``: the PolicyWalk grid random walk of Ramachandran & Amir
      (2007) (:func:`irl.solvers.samplers.policywalk`), chains batched the same
      way; needs no gradient. Its "policy reuse" becomes reuse of likelihoods:
      the human model plans inside its own likelihood (Q-values are needed
      anyway), so a rejected move or a revisited grid point costs no planning.
    * ``"nuts"``: pyro's NUTS with a potential function (``bayes`` extra);
      chains one after another.

    Args:
        human: default human model for ``fit(env, data)`` (default ``Boltzmann(1.0)``;
            ``BoltzmannQ`` is the likelihood of the original paper).
        prior: reward prior with ``log_prob`` (default ``priors.Gaussian(0, 1)``;
            ``priors.Flat()`` may give an improper posterior).
        reward_model: maps ``theta`` to rewards; default linear in the MDP's
            features, or tabular when it has none.
        sampler: ``"hmc"``, ``"policywalk"`` or ``"nuts"``.
        **sampler_options: passed to the sampler function, e.g. ``target_accept``,
            ``max_leapfrog`` (hmc), ``delta``, ``bounds`` (policywalk).

    Raises:
        ValueError: unknown sampler (listing the known ones).

    Example:
        >>> import irl, human_models as hm, demos, priors
        >>> env = irl.envs.make("gridworld-5x5")
        >>> data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=20, seed=0)
        >>> solver = irl.BayesianIRL(human=hm.Boltzmann(beta=priors.LogNormal(0.5, 0.5)),
        ...                          prior=priors.Gaussian(0, 1), max_leapfrog=16)
        >>> post = solver.fit(env, data, samples=40, warmup=40, chains=2, seed=0, check=False)  # a quick look
        >>> post.theta.shape, post.human["boltzmann.beta"].shape
        ((2, 40, 4), (2, 40))

    References:
        Ramachandran & Amir (2007), "Bayesian Inverse Reinforcement Learning",
        IJCAI. Neal (2011), "MCMC using Hamiltonian dynamics". Hoffman, Radul &
        Sountsov (2021), "An Adaptive MCMC Scheme for Setting Trajectory Lengths
        in Hamiltonian Monte Carlo", AISTATS.
    """

    def __init__(self, human: Any = None, *, prior: Any = "default", reward_model: RewardModel | None = None,
                 sampler: str = "hmc", **sampler_options: Any) -> None:
        if human is None:
            from human_models import Boltzmann

            human = Boltzmann(1.0)
        if isinstance(prior, str) and prior == "default":
            from priors import Gaussian

            prior = Gaussian(0.0, 1.0)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
        self.human, self.prior, self.reward_model = human, prior, reward_model
        self.sampler, self.sampler_options = sampler, dict(sampler_options)

    def log_joint(self, env_or_evidence: Any, data: Any = None) -> LogJoint:
        """The log-joint this solver samples for the given evidence."""
        evidence = as_evidence_list(env_or_evidence, data, self.human)
        model = self.reward_model or default_reward_model(evidence[0].mdp)
        return LogJoint(evidence, model, self.prior)

    def fit(self, env_or_evidence: Any, data: Any = None, *, samples: int = 1000, chains: int = 4,
            warmup: int | None = None, seed: int = 0, progress: bool = False, init: Any = None,
            init_radius: float = 2.0, check: bool = True, threads: int | None = 1,
            callback: Callable[[int, int, str], None] | None = None) -> Posterior:
        """Sample the posterior.

        Args:
            env_or_evidence: an MDP (then ``data`` is required), an :class:`irl.Evidence`,
                or a list of them.
            data: observations in ``env`` (e.g. :class:`demos.Trajectories`).
            samples: post-warmup draws per chain.
            chains: number of chains (advanced together by ``hmc`` and ``policywalk``).
            warmup: adaptation iterations per chain (default ``samples``).
            seed: random seed (the same seed gives the same draws).
            progress: show a progress bar (rich).
            init: starting point ``(D,)`` or ``(chains, D)`` in the sampler's
                coordinates ``[theta, u]`` (default: the prior's centre).
            init_radius: chains start at ``init`` plus uniform noise in
                ``[-init_radius, init_radius]`` per coordinate (over-dispersed
                starts make R-hat meaningful).
            check: warn (:class:`irl.ConvergenceWarning`) when the draws have not mixed.
            threads: torch intra-op threads while sampling (restored afterwards);
                1 is fastest for the small tensors of a likelihood (see
                :func:`irl.solvers.samplers.torch_threads`), ``None`` leaves torch's setting.
            callback: called as ``callback(iteration, total, phase)`` as the sampler
                advances (``phase`` is ``"warmup"`` or ``"sampling"``), e.g. to drive
                your own progress display.

        Returns:
            :class:`irl.Posterior`.

        Raises:
            TypeError: bad arguments, or ``hmc``/``nuts`` with a non-differentiable human model.
            ValueError: bad sizes, or a starting point with zero density.
            ImportError: ``sampler="nuts"`` without pyro-ppl.
        """
        if chains < 1 or samples < 1:
            raise ValueError(f"chains and samples must be >= 1: got chains={chains}, samples={samples}")
        warmup = samples if warmup is None else int(warmup)
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0: got {warmup}")
        joint = self.log_joint(env_or_evidence, data)
        if self.sampler in ("hmc", "nuts"):
            for ev in joint.evidence:
                if not getattr(ev.human, "differentiable", False):
                    raise TypeError(f"sampler={self.sampler!r} needs gradients, but {type(ev.human).__name__} is "
                                    f"not differentiable: use sampler='policywalk'")
        rng = np.random.default_rng(seed)
        x0 = self._start(joint, init, chains, init_radius, rng)

        bar = None
        user_callback = callback
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task(f"{self.sampler}: {chains} chains", total=warmup + samples)

            def callback(i: int, total: int, phase: str) -> None:
                bar.update(task, completed=i, total=total, description=f"{self.sampler} {phase}")
                if user_callback is not None:
                    user_callback(i, total, phase)
        t0 = time.perf_counter()
        try:
            fn = {"hmc": _samplers.hmc, "policywalk": _samplers.policywalk, "nuts": _samplers.pyro_nuts}[self.sampler]
            with _samplers.torch_threads(threads):
                res = fn(joint, x0, samples=samples, warmup=warmup, seed=int(rng.integers(2 ** 31)),
                         callback=callback, **self.sampler_options)
        finally:
            if bar is not None:
                bar.stop()
        seconds = time.perf_counter() - t0
        post = posterior_from_draws(joint, res.draws, log_density=res.log_density,
                                    info=dict(res.info, seconds=seconds, human=repr(self.human),
                                              prior=repr(self.prior), chains=chains, seed=seed,
                                              n_evidence=len(joint.evidence)))
        post.info["stats"] = {k: float(np.mean(v)) for k, v in res.stats.items()}
        if "diverging" in res.stats:  # which draws diverged, as (chain, draw) pairs (for ArviZ's sample_stats)
            post.info["divergent_draws"] = np.argwhere(np.asarray(res.stats["diverging"], bool)).tolist()
        if check:
            post.check(stacklevel=2)
        return post

    @staticmethod
    def _start(joint: LogJoint, init: Any, chains: int, radius: float, rng: np.random.Generator) -> np.ndarray:
        centre = joint.initial_point().numpy()
        if init is not None:
            given = np.asarray(init, dtype=np.float64)
            if given.shape == (chains, joint.dim):  # one start per chain: as given
                return given.copy()
            if given.shape == (joint.dim,):  # one point: the centre of the chains' spread starts
                centre = given
            else:
                raise ValueError(f"init must have shape ({joint.dim},) or ({chains}, {joint.dim}) = "
                                 f"[reward {joint.n_reward} + unconstrained human {len(joint.continuous)}]: "
                                 f"got {given.shape}")
        x0 = centre + rng.uniform(-radius, radius, size=(chains, joint.dim))
        with torch.no_grad():
            lp = joint(torch.from_numpy(x0)).numpy()
        for _ in range(100):  # resample starts where the density vanishes (e.g. outside a box prior)
            bad = ~np.isfinite(lp)
            if not bad.any():
                break
            radius *= 0.7
            x0[bad] = centre + rng.uniform(-radius, radius, size=(int(bad.sum()), joint.dim))
            with torch.no_grad():
                lp[bad] = joint(torch.from_numpy(x0[bad])).numpy()
        return x0


def posterior_from_draws(joint: LogJoint, draws: np.ndarray, *, log_density: np.ndarray | None = None,
                         info: dict[str, Any] | None = None, discrete_draws: int = 100) -> Posterior:
    """A :class:`irl.Posterior` from draws ``(C, N, D)`` of ``joint``'s unconstrained vector.

    Human parameters are mapped to their constrained values; the posterior-mean
    reward is the mean of ``reward_model(theta)`` over draws; summed-out discrete
    human parameters get their posterior table averaged over up to
    ``discrete_draws`` evenly spaced draws (Rao-Blackwellised).
    """
    c, n, d = draws.shape
    flat = torch.from_numpy(np.ascontiguousarray(draws.reshape(-1, d)))
    with torch.no_grad():
        human = {k: v.numpy().reshape(c, n) for k, v in joint.human_values(flat).items()}
        theta = flat[:, :joint.n_reward]
        total = None
        for start in range(0, theta.shape[0], 512):
            s = joint.reward_model(theta[start:start + 512]).sum(dim=0)
            total = s if total is None else total + s
        reward_mean = (total / theta.shape[0]).numpy()
    discrete: dict[str, dict[Any, float]] = {}
    if joint.discrete_names():
        idx = np.linspace(0, c * n - 1, min(discrete_draws, c * n)).round().astype(np.int64)
        for i in idx:
            for k, table in joint.discrete_posterior(flat[i]).items():
                acc = discrete.setdefault(k, {})
                for v, p in table.items():
                    acc[v] = acc.get(v, 0.0) + p / idx.size
    return Posterior(theta=draws[..., :joint.n_reward].copy(), param_names=joint.reward_model.param_names(),
                     human=human, reward_mean=reward_mean, log_density=log_density, discrete=discrete,
                     unconstrained=draws.copy(), info=dict(info or {}), joint=joint)
