"""Bayesian IRL: sample the log-joint of reward and human parameters."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.sparse
import torch

from irl.evidence import as_evidence_list
from irl.mdp import TabularMDP
from irl.posterior import Posterior
from irl.rewards import RewardModel, default_reward_model
from irl.solvers import samplers as _samplers
from irl.solvers.base import LogJoint

__all__ = ["BayesianIRL", "SAMPLERS", "ScaleReparam", "run_fingerprint", "posterior_from_draws"]

#: Sampler names accepted by :class:`BayesianIRL`.
SAMPLERS = ("hmc", "policywalk", "nuts")
#: Coordinates the sampler moves in (see :class:`ScaleReparam`).
REPARAMS = ("auto", "scale", "none")


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
        reparam: coordinates the sampler moves in. ``"auto"`` (default): when one
            human model with an inferred temperature (``Boltzmann(beta=prior)``:
            its policy depends on ``beta * r`` only) explains all evidence and the
            reward model is linear or tabular, the reward is sampled in units of
            the temperature (:class:`ScaleReparam`), which removes the scale
            ridge of the joint posterior (a funnel in ``(theta, log beta)``, where
            HMC diverges); otherwise as ``"none"``. ``"scale"`` insists on it,
            ``"none"`` samples ``[theta, u]`` directly. Draws are always reported
            in the log-joint's coordinates.
        **sampler_options: passed to the sampler function, e.g. ``target_accept``,
            ``max_leapfrog`` (hmc), ``delta``, ``bounds`` (policywalk).

    Raises:
        ValueError: unknown sampler or reparam (listing the known ones).

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
                 sampler: str = "hmc", reparam: str = "auto", **sampler_options: Any) -> None:
        if human is None:
            from human_models import Boltzmann

            human = Boltzmann(1.0)
        if isinstance(prior, str) and prior == "default":
            from priors import Gaussian

            prior = Gaussian(0.0, 1.0)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
        if reparam not in REPARAMS:
            raise ValueError(f"unknown reparam {reparam!r}; known: {', '.join(REPARAMS)}")
        self.human, self.prior, self.reward_model, self.reparam = human, prior, reward_model, reparam
        self.sampler, self.sampler_options = sampler, dict(sampler_options)

    def log_joint(self, env_or_evidence: Any, data: Any = None) -> LogJoint:
        """The log-joint this solver samples for the given evidence."""
        evidence = as_evidence_list(env_or_evidence, data, self.human)
        model = self.reward_model or default_reward_model(evidence[0].mdp)
        return LogJoint(evidence, model, self.prior)

    def fit(self, env_or_evidence: Any, data: Any = None, *, samples: int = 1000, chains: int = 4,
            warmup: int | None = None, seed: int = 0, progress: bool = False, init: Any = None,
            init_radius: float = 2.0, check: bool = True, threads: int | None = 1,
            callback: Callable[[int, int, str], None] | None = None, checkpoint: str | os.PathLike | None = None,
            checkpoint_every: int = 100) -> Posterior:
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
            init: starting point ``(D,)`` or ``(chains, D)`` in the log-joint's
                coordinates ``[theta, u]`` (default: the prior's centre).
            init_radius: chains start at ``init`` plus uniform noise in
                ``[-init_radius, init_radius]`` per coordinate (over-dispersed
                starts make R-hat meaningful); ``>= 0``.
            check: warn (:class:`irl.ConvergenceWarning`) when the draws have not mixed.
            threads: torch intra-op threads while sampling (restored afterwards);
                1 is fastest for the small tensors of a likelihood (see
                :func:`irl.solvers.samplers.torch_threads`), ``None`` leaves torch's setting.
            callback: called as ``callback(iteration, total, phase)`` as the sampler
                advances (``phase`` is ``"warmup"`` or ``"sampling"``), e.g. to drive
                your own progress display.
            checkpoint: a file (``.npz``) that keeps the run resumable (``sampler="hmc"``):
                every ``checkpoint_every`` draws per chain the draws so far and the
                sampler's state are written to it atomically (no pickle). If the file
                exists, the run continues from it: a run killed and resumed any number
                of times gives exactly the draws of an uninterrupted run. The file
                records everything that defines the run (data, MDP, human models,
                priors, reward model, seed, warmup, chains, sampler settings, library
                version); resuming with anything different is refused, naming what differs.
            checkpoint_every: draws per chain between checkpoint writes.

        Returns:
            :class:`irl.Posterior`.

        Raises:
            TypeError: bad arguments, or ``hmc``/``nuts`` with a non-differentiable human model.
            ValueError: bad sizes or values (each names the argument, the rule and what was
                given), a starting point with zero density, or a checkpoint of another run.
            ImportError: ``sampler="nuts"`` without pyro-ppl.

        Example:
            >>> import os, tempfile, irl, human_models as hm, demos
            >>> env = irl.envs.make("gridworld-5x5")
            >>> data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=10, seed=0)
            >>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
            >>> solver = irl.BayesianIRL(hm.Boltzmann(2.0), max_leapfrog=8)
            >>> a = solver.fit(env, data, samples=6, warmup=10, chains=2, check=False, checkpoint=path)
            >>> b = solver.fit(env, data, samples=6, warmup=10, chains=2, check=False, checkpoint=path)  # resumed
            >>> bool((a.theta == b.theta).all())
            True
        """
        samples = _count("samples", samples, 1)
        chains = _count("chains", chains, 1)
        warmup = samples if warmup is None else _count("warmup", warmup, 0)
        checkpoint_every = _count("checkpoint_every", checkpoint_every, 1)
        init_radius = _finite_number("init_radius", init_radius, 0.0)
        seed = _count("seed", seed, 0)
        joint = self.log_joint(env_or_evidence, data)
        if self.sampler in ("hmc", "nuts"):
            for ev in joint.evidence:
                if not getattr(ev.human, "differentiable", False):
                    raise TypeError(f"sampler={self.sampler!r} needs gradients, but {type(ev.human).__name__} is "
                                    f"not differentiable: use sampler='policywalk'")
        if checkpoint is not None and self.sampler != "hmc":
            raise ValueError(f"checkpoint= needs sampler='hmc' (its state can be saved and resumed exactly): "
                             f"got sampler={self.sampler!r}")
        rng = np.random.default_rng(seed)
        x0 = self._start(joint, init, chains, init_radius, rng)
        reparam = self._reparam(joint)
        density = joint if reparam is None else reparam.density(joint)
        z0 = x0 if reparam is None else reparam.from_joint(x0)

        state, save = None, None
        if checkpoint is not None:
            fingerprint = run_fingerprint(joint, dict(
                seed=seed, warmup=warmup, chains=chains, sampler=self.sampler, reparam=_reparam_label(reparam),
                sampler_options=_jsonable(self.sampler_options), init=_init_label(init), init_radius=init_radius))
            state, done_info = _load_checkpoint(checkpoint, fingerprint, samples)

            def save(st: dict) -> None:
                _save_checkpoint(checkpoint, st, fingerprint, dict(done_info, seconds=done_info.get("seconds", 0.0)
                                                                   + time.perf_counter() - t0))

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
        sampler_seed = int(rng.integers(2 ** 31))
        try:
            fn = {"hmc": _samplers.hmc, "policywalk": _samplers.policywalk, "nuts": _samplers.pyro_nuts}[self.sampler]
            extra = {} if checkpoint is None else dict(state=state, checkpoint=save, checkpoint_every=checkpoint_every)
            with _samplers.torch_threads(threads):
                res = fn(density, z0, samples=samples, warmup=warmup, seed=sampler_seed, callback=callback,
                         **extra, **self.sampler_options)
        finally:
            if bar is not None:
                bar.stop()
        seconds = time.perf_counter() - t0
        draws, dens = res.draws, res.log_density
        if reparam is not None:  # back to the log-joint's coordinates [theta, u] (and its density)
            draws, dens = reparam.to_joint_draws(draws, dens)
        resumed = 0 if state is None else int(np.shape(state["draws"])[1])
        post = posterior_from_draws(joint, draws, log_density=dens,
                                    info=dict(res.info, seconds=seconds, human=repr(self.human),
                                              prior=repr(self.prior), chains=chains, seed=seed,
                                              n_evidence=len(joint.evidence), reparam=_reparam_label(reparam),
                                              resumed_from_draws=resumed))
        post.info["stats"] = {k: float(np.mean(v)) for k, v in res.stats.items()}
        if "diverging" in res.stats:  # which draws diverged, as (chain, draw) pairs (for ArviZ's sample_stats)
            post.info["divergent_draws"] = np.argwhere(np.asarray(res.stats["diverging"], bool)).tolist()
        if check:
            post.check(stacklevel=2)
        return post

    def _reparam(self, joint: LogJoint) -> "ScaleReparam | None":
        if self.reparam == "none":
            return None
        found = ScaleReparam.find(joint)
        if found is None and self.reparam == "scale":
            raise ValueError("reparam='scale' needs one human model with a temperature parameter given as a prior "
                             "(e.g. Boltzmann(beta=priors.LogNormal(0, 1))) explaining all evidence, and a "
                             "homogeneous reward model (linear or tabular); use reparam='auto' or 'none'")
        return found

    @staticmethod
    def _start(joint: LogJoint, init: Any, chains: int, radius: float, rng: np.random.Generator) -> np.ndarray:
        centre = joint.initial_point().numpy()
        if init is not None:
            try:
                given = np.asarray(init, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"init must be numbers of shape ({joint.dim},) or ({chains}, {joint.dim}): "
                                 f"got {init!r}") from None
            if given.shape not in ((chains, joint.dim), (joint.dim,)):
                raise ValueError(f"init must have shape ({joint.dim},) or ({chains}, {joint.dim}) = "
                                 f"[reward {joint.n_reward} + unconstrained human {len(joint.continuous)}]: "
                                 f"got {given.shape}")
            if not np.all(np.isfinite(given)):
                bad = np.argwhere(~np.isfinite(given)).tolist()
                raise ValueError(f"init must be finite: got {given[~np.isfinite(given)][0]} at index "
                                 f"{bad[0] if given.ndim > 1 else bad[0][0]} (of {given.shape}; names "
                                 f"{', '.join(joint.param_names())})")
            if given.shape == (chains, joint.dim):  # one start per chain: as given
                return given.copy()
            centre = given  # one point: the centre of the chains' spread starts
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


def _count(name: str, value: Any, low: int) -> int:
    """An integer argument ``>= low``; a float, bool or string is refused, naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {low}: got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}: got {value}")
    return int(value)


def _finite_number(name: str, value: Any, low: float) -> float:
    """A finite real argument ``>= low``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a finite number >= {low:g}: got {value!r} ({type(value).__name__})") from None
    if not math.isfinite(v) or v < low:
        raise ValueError(f"{name} must be a finite number >= {low:g}: got {value!r}")
    return v


# ---------------------------------------------------------------- the scale of the reward
@dataclass(frozen=True)
class ScaleReparam:
    """Sample the reward in units of the human's temperature: ``z = [beta(u) * theta, u]``.

    A Boltzmann-type human (``pi(. | beta, r) = pi(. | 1, beta * r)``) with a
    homogeneous reward model makes the likelihood a function of ``w = beta * theta``
    alone: in ``(theta, u = log beta)`` the posterior lies along the ridge
    ``theta = w / beta``, narrower the larger ``beta`` (a funnel, where HMC
    diverges). In ``(w, u)`` the data pin ``w`` down whatever ``beta`` is, and
    ``u`` is left to the priors: a nearly Gaussian target. The map is a
    bijection for ``beta > 0``; the density gains the log-Jacobian
    ``-P log beta`` (``theta = w / beta``, ``P`` reward parameters).

    Attributes:
        n_reward: number of reward parameters ``P``.
        index: column of ``u`` in ``x = [theta, u]``.
        prior: the temperature's prior (its ``to_constrained`` maps ``u`` to ``beta``).

    Example:
        >>> import torch, irl, human_models as hm, demos, priors
        >>> env = irl.envs.make("gridworld-5x5")
        >>> d = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=5, seed=0)
        >>> solver = irl.BayesianIRL(hm.Boltzmann(beta=priors.LogNormal(0, 1)))
        >>> rp = ScaleReparam.find(solver.log_joint(env, d))
        >>> x = torch.tensor([[1.0, 0.0, -0.3, -1.0, 0.7]], dtype=torch.float64)
        >>> bool(torch.allclose(rp.to_joint(rp.from_joint(x))[0], x))
        True

    References:
        Papaspiliopoulos, Roberts & Sköld (2007), "A general framework for the
        parametrization of hierarchical models", Statistical Science 22(1).
        Betancourt & Girolami (2015), "Hamiltonian Monte Carlo for hierarchical models".
    """

    n_reward: int
    index: int
    prior: Any

    @classmethod
    def find(cls, joint: LogJoint) -> "ScaleReparam | None":
        """The reparameterisation for ``joint``, or ``None`` when its posterior has no scale ridge to remove.

        It applies when the reward model is ``homogeneous``, one human model explains
        all evidence, declares a ``temperature`` parameter, and that parameter is
        inferred (a continuous prior on positive values).
        """
        if not getattr(joint.reward_model, "homogeneous", False) or len(joint.humans) != 1:
            return None
        name = getattr(joint.humans[0], "temperature", None)
        for j, (_, n, pr) in enumerate(joint.continuous):
            if n == name and float(getattr(pr.support, "lower_bound", -math.inf)) >= 0.0:
                return cls(joint.n_reward, joint.n_reward + j, pr)
        return None

    def _log_beta(self, u: torch.Tensor) -> torch.Tensor:
        return torch.log(self.prior.to_constrained(u))

    def to_joint(self, z: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = [w / beta, u]`` and ``log |det dx/dz| = -P log beta`` for ``z`` ``(..., D)``."""
        z = torch.as_tensor(z, dtype=torch.float64)
        log_beta = self._log_beta(z[..., self.index])
        theta = z[..., :self.n_reward] * torch.exp(-log_beta)[..., None]
        return torch.cat([theta, z[..., self.n_reward:]], dim=-1), -self.n_reward * log_beta

    def from_joint(self, x: Any) -> Any:
        """``z = [beta * theta, u]`` (numpy in, numpy out; torch in, torch out)."""
        xt = torch.as_tensor(x, dtype=torch.float64)
        with torch.no_grad():
            w = xt[..., :self.n_reward] * torch.exp(self._log_beta(xt[..., self.index]))[..., None]
            z = torch.cat([w, xt[..., self.n_reward:]], dim=-1)
        return z.numpy() if isinstance(x, np.ndarray) else z

    def density(self, log_density: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """The log-density in ``z``: ``log_density(x(z)) + log |det dx/dz|``."""
        def logp(z: torch.Tensor) -> torch.Tensor:
            x, log_det = self.to_joint(z)
            return log_density(x) + log_det

        return logp

    def to_joint_draws(self, draws: np.ndarray, log_density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Draws ``(C, N, D)`` in ``z`` and their density, mapped to ``x`` and the log-joint's density."""
        with torch.no_grad():
            x, log_det = self.to_joint(torch.from_numpy(np.ascontiguousarray(draws)))
        return x.numpy(), log_density - log_det.numpy()


def _reparam_label(rp: ScaleReparam | None) -> str:
    return "none" if rp is None else f"scale (reward in units of x[{rp.index}])"


# ---------------------------------------------------------------- checkpoints
_CHECKPOINT_FORMAT = "pluggable-irl/bayes-checkpoint"
_STATE_ARRAYS = ("draws", "log_density", "accept_prob", "n_steps", "diverging", "x", "logp", "grad", "step_size",
                 "inv_mass", "inv_mass_chol")


def _digest(obj: Any, skip: tuple[type, ...] = ()) -> str:
    """A sha256 of a value's content: arrays by their bytes, objects by their public attributes.

    Values of the types in ``skip`` found inside ``obj`` count by their type only (e.g. the MDP a
    reward model keeps a reference to, which the fingerprint names on its own).
    """
    h = hashlib.sha256()

    def feed(o: Any, depth: int) -> None:
        h.update(type(o).__name__.encode())
        if depth > 8 or (depth and isinstance(o, skip)):
            return
        if o is None or isinstance(o, (bool, int, float, str, bytes, np.generic)):
            h.update(repr(o).encode())
        elif isinstance(o, torch.Tensor):
            feed(o.detach().cpu().numpy(), depth + 1)
        elif isinstance(o, np.ndarray):
            h.update(f"{o.dtype}{o.shape}".encode())
            if o.dtype == object:
                for v in o.ravel().tolist():
                    feed(v, depth + 1)
            else:
                h.update(np.ascontiguousarray(o).tobytes())
        elif scipy.sparse.issparse(o):
            m = scipy.sparse.csr_matrix(o)
            m.sort_indices()
            for part in (np.asarray(m.shape), m.indptr, m.indices, m.data):
                feed(part, depth + 1)
        elif isinstance(o, dict):
            for k in sorted(o, key=repr):
                feed(k, depth + 1)
                feed(o[k], depth + 1)
        elif isinstance(o, (list, tuple)):
            for v in o:
                feed(v, depth + 1)
        elif hasattr(o, "__dict__") or dataclasses.is_dataclass(o):
            names = ([f.name for f in dataclasses.fields(o)] if dataclasses.is_dataclass(o) else sorted(vars(o)))
            for k in names:
                if not k.startswith("_"):  # private attributes are caches, not content
                    feed(k, depth + 1)
                    feed(getattr(o, k), depth + 1)
        else:
            h.update(repr(o).encode())

    feed(obj, 0)
    return h.hexdigest()


def run_fingerprint(joint: LogJoint, settings: dict[str, Any]) -> dict[str, Any]:
    """Everything that defines a sampling run, as a JSON-serialisable dict (compared on resume).

    Args:
        joint: the log-joint (its evidence, MDPs, human models, priors and reward model).
        settings: the run's own settings (seed, warmup, chains, sampler and its options, ...).

    Returns:
        ``{"data": sha256 of the observations, "mdp": ..., "human": [...], "prior": ...,
        "reward_model": ..., "version": ..., **settings}``.
    """
    from irl._version import __version__

    rm = joint.reward_model
    return dict(
        data=_digest([ev.observation for ev in joint.evidence]),
        mdp=[f"{getattr(ev.mdp, 'name', '?')} (sha256 {_digest(ev.mdp)[:16]})" for ev in joint.evidence],
        human=[repr(ev.human) for ev in joint.evidence],
        prior=repr(joint.prior),
        reward_model=f"{type(rm).__name__}({', '.join(rm.param_names())}; sha256 {_digest(rm, (TabularMDP,))[:16]})",
        version=__version__, **settings)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=repr))


def _init_label(init: Any) -> str:
    return "default" if init is None else f"sha256 {_digest(np.asarray(init, dtype=np.float64))[:16]}"


def _load_checkpoint(path: Any, fingerprint: dict[str, Any], samples: int) -> tuple[dict | None, dict]:
    """The sampler state in ``path`` (``None`` if there is no file) after checking it belongs to this run."""
    from demos import DemoFileError, load_arrays

    if not os.path.exists(path):
        return None, {}
    _, arrays, meta = load_arrays(path, _CHECKPOINT_FORMAT)
    stored = meta.get("fingerprint", {})
    diffs = [f"{k}: checkpoint {stored.get(k, '(missing)')!r}, this run {v!r}" for k, v in fingerprint.items()
             if _jsonable(stored.get(k)) != _jsonable(v)]
    if diffs:
        raise ValueError(f"checkpoint {path} belongs to another run, resuming would mix the draws of two "
                         f"posteriors: {'; '.join(diffs)}. Resume with the settings of the interrupted run, "
                         f"or delete the file to start afresh")
    missing = [k for k in _STATE_ARRAYS[:-1] if k not in arrays]
    if missing:
        raise DemoFileError(f"{path}: checkpoint lacks the arrays {missing}")
    done = arrays["draws"].shape[1]
    if done > samples:
        raise ValueError(f"checkpoint {path} already holds {done} draws per chain, more than samples={samples}")
    state = dict(arrays, **{k: meta[k] for k in ("trajectory_times", "rng", "calls", "evaluations")})
    return state, {"seconds": float(meta.get("seconds", 0.0))}


def load_checkpoint_draws(path: Any) -> np.ndarray:
    """The draws ``(chains, draws, D)`` held by a checkpoint file, in the sampler's coordinates."""
    from demos import load_arrays

    return load_arrays(path, _CHECKPOINT_FORMAT)[1]["draws"]


def _save_checkpoint(path: Any, state: dict, fingerprint: dict[str, Any], info: dict[str, Any]) -> None:
    from demos import save_arrays

    arrays = {k: state[k] for k in _STATE_ARRAYS if state.get(k) is not None}
    meta = dict(fingerprint=fingerprint, trajectory_times=state["trajectory_times"], rng=state["rng"],
                calls=int(state["calls"]), evaluations=int(state["evaluations"]), **info)
    save_arrays(path, _CHECKPOINT_FORMAT, arrays, meta=_jsonable(meta))


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
