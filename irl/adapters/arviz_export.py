"""ArviZ export of a posterior with the pointwise log-likelihood of its data."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_arviz"]


def to_arviz(posterior: Any, env: Any = None, data: Any = None, human: Any = None, *, reward_model: Any = None,
             log_likelihood: Any = None) -> Any:
    """An ArviZ ``InferenceData`` with a ``log_likelihood`` group, ready for ``arviz.loo`` / ``arviz.compare``.

    The pointwise log-likelihood of every observation of ``data`` (an episode, a
    choice, ...) at every draw of every chain is computed with
    :func:`irl.compare.pointwise_log_likelihood` (all draws, no thinning), unless
    ``log_likelihood`` is given.

    Args:
        posterior: an :class:`irl.Posterior` from :class:`irl.BayesianIRL`.
        env: the MDP of ``data``.
        data: the evidence the posterior was fitted to.
        human: the human model of the fit.
        reward_model: the fit's reward model (default as in the fit).
        log_likelihood: ``(chains, draws, n)`` or ``(chains * draws, n)`` pointwise values instead.

    Returns:
        ``arviz.InferenceData`` (see :meth:`irl.Posterior.to_arviz`).

    Example:
        >>> import irl, human_models as hm, priors, demos, arviz as az
        >>> env = irl.envs.make("gridworld-5x5")
        >>> data = demos.simulate(env, hm.Boltzmann(2.0), env.true_reward, n=20, seed=0)
        >>> h = hm.Boltzmann(2.0)
        >>> post = irl.BayesianIRL(human=h, prior=priors.Gaussian(0.0, 1.0)).fit(
        ...     env, data, samples=100, chains=2, seed=0, progress=False, check=False)
        >>> idata = irl.adapters.to_arviz(post, env, data, h)
        >>> idata.log_likelihood["obs"].shape
        (2, 100, 20)
    """
    if log_likelihood is None:
        from irl.compare import pointwise_log_likelihood

        if env is None or data is None or human is None:
            raise ValueError("to_arviz needs env, data and human (or log_likelihood=) to compute the pointwise "
                             "log-likelihood")
        log_likelihood = pointwise_log_likelihood(posterior, env, data, human, reward_model, max_draws=None)
    return posterior.to_arviz(log_likelihood=log_likelihood)
