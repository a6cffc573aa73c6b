"""Which question to ask next: active reward learning from comparisons and k-way choices.

A *query* shows the human ``K`` trajectory segments (``K = 2``: a pairwise
comparison; ``K > 2``: pick the best of ``K``) and records which one they
choose, or, for ``answer="ranking"`` candidates, their order of all ``K``
(Plackett-Luce: successive choices of the best remaining one). The answer is scored
exactly as :class:`demos.Comparisons` evidence is: the human model's choice
rule over the segments' discounted returns,
``P(k | query, r) = human.choice_log_probs(G_r(query)).exp()``, Boltzmann over
returns for every built-in model (and a mixture with uniform for
:class:`human_models.Noisy`). Any human model with a ``choice_log_probs``
method can therefore be both the model of the answerer and the simulated
answerer.

The belief about the reward is a set of weighted reward samples
(:class:`RewardSamples`): the draws of an :class:`irl.Posterior`, draws from a
prior, or any array of rewards. Every criterion is computed for all samples and
all candidate queries at once (tensors ``(N, Q, K)``, chunked over queries to
bound memory):

* ``information_gain``: the mutual information between the answer and the
  reward, ``I = H(E_r[P(.|r)]) - E_r[H(P(.|r))]`` in nats (Bıyık et al. 2019);
* ``volume_removal``: the expected removed volume ``1 - sum_k pbar_k ** 2`` with
  ``pbar_k = E_r[P(k|r)]`` (Sadigh et al. 2017, in the form of Bıyık et al. 2019);
  larger is better;
* ``max_regret``: the expected regret between posterior samples inside the query,
  ``E_{r, r'}[G_r(best_r) - G_r(best_{r'})]`` (for a pair of samples whose best
  options differ this is the pairwise regret of Wilde et al. 2020);
* ``thompson``: draw ``K`` rewards from the belief; the best query is the one whose
  options are the draws' favourite candidate trajectories (score: minus the
  summed regret of the options under the draws, best assignment);
* ``random``: a uniformly random query (the baseline).

:func:`run` closes the loop: it asks a simulated human, reweights the samples by
the likelihood of each answer (importance reweighting of a fixed sample set) and
reports the effective sample size. When that collapses it renews the samples, by
a user's ``refit`` (e.g. Bayesian IRL on all answers so far) or by resample-move
steps (:func:`resample_move`) when the starting density is known (a prior, or a
posterior fitted in the session); otherwise it warns with
:class:`WeightDegeneracyWarning`.

References:
    Sadigh, Dragan, Sastry & Seshia (2017), "Active Preference-Based Learning of
    Reward Functions", RSS. Bıyık, Palan, Landolfi, Losey & Sadigh (2019),
    "Asking Easy Questions: A User-Friendly Approach to Active Reward Learning",
    CoRL. Wilde, Kulić & Smith (2020), "Active Preference Learning using Maximum
    Regret", IROS. Bıyık, Talati & Sadigh (2022), "APReL: A Library for Active
    Preference-based Reward Learning Algorithms", HRI. Thompson (1933), "On the
    likelihood that one unknown probability exceeds another in view of the
    evidence of two samples", Biometrika.


The package is split by role: :mod:`~irl.active.samples` (the belief),
:mod:`~irl.active.candidates` (queries and their files), :mod:`~irl.active.criteria`
(scoring, :func:`next_query`) and :mod:`~irl.active.loop` (:func:`run`).
"""

from __future__ import annotations

from irl.active.samples import ANSWERS, CRITERIA, RewardSamples, WeightDegeneracyWarning, as_samples
from irl.active.candidates import Candidates, make_candidates
from irl.active.criteria import Query, answer_log_probs, next_query, scores
from irl.active.loop import ActiveRun, resample_move, run

__all__ = ["CRITERIA", "ANSWERS", "RewardSamples", "Candidates", "Query", "ActiveRun", "WeightDegeneracyWarning",
           "as_samples", "make_candidates", "answer_log_probs", "scores", "next_query", "run", "resample_move"]
