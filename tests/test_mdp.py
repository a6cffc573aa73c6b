"""irl.TabularMDP: construction, invariants, and every validation path with its message."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import irl
from irl.mdp import MDPValidationError, as_reward_array, state_action_reward

S, A = 3, 2


def dynamics(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(S), size=(S, A))


# ------------------------------------------------------------ construction
def test_dense_sparse_and_torch_inputs_build_the_same_mdp():
    T = dynamics()
    dense = irl.TabularMDP.from_arrays(T, discount=0.9, horizon=4)
    sparse = irl.TabularMDP.from_arrays(sp.csr_matrix(T.reshape(S * A, S)), n_actions=A, discount=0.9, horizon=4)
    torch_in = irl.TabularMDP.from_arrays(torch.from_numpy(T), discount=0.9, horizon=4)
    for m in (dense, sparse, torch_in):
        assert (m.n_states, m.n_actions, m.transitions.shape) == (S, A, (S * A, S))
        assert sp.issparse(m.transitions)
        np.testing.assert_allclose(m.dense_transitions(), T, atol=1e-15)
        # row s*A + a of the sparse matrix is P(. | s, a)
        np.testing.assert_allclose(m.transitions[1 * A + 0].toarray().ravel(), T[1, 0], atol=1e-15)
    np.testing.assert_allclose(dense.initial, np.full(S, 1 / S))  # default start: uniform


def test_fields_are_read_only_and_normalised():
    T = dynamics(1)
    T[0, 1] *= 1 + 5e-7  # within tolerance: renormalised to sum to one exactly
    mdp = irl.TabularMDP.from_arrays(T, initial=[0.2, 0.3, 0.5], features=np.eye(S), terminal=[False, True, False])
    row_sums = np.asarray(mdp.transitions.sum(axis=1)).ravel()
    np.testing.assert_allclose(row_sums, 1.0, atol=1e-15)
    for name in ("initial", "features", "terminal"):
        arr = getattr(mdp, name)
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0
    assert mdp.terminal.dtype == bool and mdp.terminal.tolist() == [False, True, False]
    # default start excludes terminal states
    m2 = irl.TabularMDP.from_arrays(T, terminal=[False, True, False])
    np.testing.assert_allclose(m2.initial, [0.5, 0.0, 0.5])


def test_continuation_zeroes_terminal_rows_only():
    T = dynamics(2)
    mdp = irl.TabularMDP.from_arrays(T, terminal=[False, True, False])
    C = mdp.continuation.toarray().reshape(S, A, S)
    np.testing.assert_allclose(C[1], 0.0)
    np.testing.assert_allclose(C[[0, 2]], T[[0, 2]], atol=1e-15)
    np.testing.assert_allclose(mdp.continuation_T.toarray(), mdp.continuation.toarray().T)


def test_terminal_states_may_have_empty_rows():
    T = dynamics(3)
    T[2] = 0.0
    mdp = irl.TabularMDP.from_arrays(T, terminal=[False, False, True])
    assert mdp.transitions[2 * A:3 * A].nnz == 0


def test_features_state_and_state_action():
    mdp = irl.TabularMDP.from_arrays(dynamics(), features=np.arange(S, dtype=float))  # (S,) -> (S, 1)
    assert mdp.features.shape == (S, 1) and mdp.n_features == 1
    fm = mdp.feature_matrix()
    assert fm.shape == (S, A, 1)
    np.testing.assert_array_equal(fm[:, 1, 0], [0, 1, 2])
    sa = np.random.default_rng(0).normal(size=(S, A, 4))
    m2 = irl.TabularMDP.from_arrays(dynamics(), features=sa)
    assert m2.n_features == 4
    np.testing.assert_array_equal(m2.feature_matrix(), sa)
    with pytest.raises(MDPValidationError, match="has no reward features"):
        irl.TabularMDP.from_arrays(dynamics()).feature_matrix()


def test_replace_validates_again():
    mdp = irl.TabularMDP.from_arrays(dynamics(), discount=0.9)
    assert mdp.replace(horizon=5).horizon == 5 and mdp.horizon is None
    with pytest.raises(MDPValidationError, match=r"discount must lie in \[0, 1\]: got 2"):
        mdp.replace(discount=2.0)


def test_dense_transitions_refuses_a_big_mdp():
    n = 2001
    big = irl.TabularMDP.from_arrays(sp.identity(n, format="csr"), n_actions=1)
    assert big.n_states == n and big.transitions.nnz == n
    with pytest.raises(MDPValidationError, match=r"refusing to build a dense \(S, A, S\) array for S = 2001 > "
                                                 r"max_states = 2000"):
        big.dense_transitions()
    small = irl.TabularMDP.from_arrays(dynamics())
    with pytest.raises(MDPValidationError, match="S = 3 > max_states = 2"):
        small.dense_transitions(max_states=2)
    assert small.dense_transitions(max_states=3).shape == (S, A, S)


# --------------------------------------------------------------- bad input
def test_rows_that_do_not_sum_to_one_name_the_state_and_action():
    T = dynamics()
    T[1, 0] *= 0.9
    with pytest.raises(MDPValidationError, match=r"transitions\[s=1, a=0\] must sum to 1: got 0\.9\b"):
        irl.TabularMDP.from_arrays(T)
    T = dynamics()
    T[2, 1, 0] += 0.25
    with pytest.raises(MDPValidationError, match=r"transitions\[s=2, a=1\] must sum to 1: got 1\.25"):
        irl.TabularMDP.from_arrays(sp.csr_matrix(T.reshape(S * A, S)), n_actions=A)
    T = dynamics()
    T[0, 1] = 0.0  # an empty row is only allowed in a terminal state
    with pytest.raises(MDPValidationError, match=r"transitions\[s=0, a=1\] must sum to 1: got 0 "
                                                 r"\(only terminal states may have empty rows\)"):
        irl.TabularMDP.from_arrays(T)


def test_negative_and_non_finite_probabilities():
    T = dynamics()
    T[0, 1] = [0.6, 0.5, -0.1]
    with pytest.raises(MDPValidationError, match=r"transitions\[s=0, a=1, s'=2\] must be a probability >= 0: "
                                                 r"got -0\.1"):
        irl.TabularMDP.from_arrays(T)
    T = dynamics()
    T[1, 1, 2] = np.nan
    with pytest.raises(MDPValidationError, match=r"transitions\[1, 1, 2\] must be finite: got nan"):
        irl.TabularMDP.from_arrays(T)
    P = sp.csr_matrix(dynamics().reshape(S * A, S))
    P.data[0] = np.inf
    with pytest.raises(MDPValidationError, match=r"transitions\[s=0, a=0, s'=\d\] must be finite: got inf"):
        irl.TabularMDP.from_arrays(P, n_actions=A)


def test_transition_shapes():
    with pytest.raises(MDPValidationError, match=r"transitions must have shape \(S, A, S\): got \(3, 2\)"):
        irl.TabularMDP.from_arrays(np.full((S, A), 0.5))
    with pytest.raises(MDPValidationError, match=r"transitions must have shape \(S, A, S\): got \(3, 2, 4\)"):
        irl.TabularMDP.from_arrays(np.full((S, A, 4), 0.25))
    with pytest.raises(MDPValidationError, match=r"must be a scipy\.sparse matrix .*got ndarray"):
        irl.TabularMDP(transitions=dynamics().reshape(S * A, S), n_states=S, n_actions=A, initial=np.ones(S) / S)


def test_sparse_input_needs_the_number_of_actions():
    P = sp.csr_matrix(dynamics().reshape(S * A, S))
    with pytest.raises(MDPValidationError, match=r"n_actions is required with a sparse \(S\*A, S\) transition"):
        irl.TabularMDP.from_arrays(P)
    with pytest.raises(MDPValidationError, match=r"transitions must have shape \(S\*A, S\) = \(9, 3\): got \(6, 3\)"):
        irl.TabularMDP.from_arrays(P, n_actions=3)
    assert irl.TabularMDP.from_arrays(P, n_actions=A).n_actions == A


def test_feature_shapes():
    T = dynamics()
    with pytest.raises(MDPValidationError, match=r"features must have shape \(S, F\) = \(3, F\) or \(S, A, F\) = "
                                                 r"\(3, 2, F\): got \(4, 2\)"):
        irl.TabularMDP.from_arrays(T, features=np.zeros((S + 1, 2)))
    with pytest.raises(MDPValidationError, match=r"features must have shape .*got \(3, 3, 5\)"):
        irl.TabularMDP.from_arrays(T, features=np.zeros((S, A + 1, 5)))
    with pytest.raises(MDPValidationError, match=r"features must have shape .*got \(3, 2, 1, 1\)"):
        irl.TabularMDP.from_arrays(T, features=np.zeros((S, A, 1, 1)))
    f = np.zeros((S, 2))
    f[1, 0] = np.nan
    with pytest.raises(MDPValidationError, match=r"features\[1, 0\] must be finite: got nan"):
        irl.TabularMDP.from_arrays(T, features=f)


def test_initial_distribution():
    T = dynamics()
    with pytest.raises(MDPValidationError, match=r"initial must have shape \(3,\): got \(2,\)"):
        irl.TabularMDP.from_arrays(T, initial=[0.5, 0.5])
    with pytest.raises(MDPValidationError, match=r"initial must sum to 1: got 0\.9\b"):
        irl.TabularMDP.from_arrays(T, initial=[0.3, 0.3, 0.3])
    with pytest.raises(MDPValidationError, match=r"initial\[0\] must be a probability >= 0: got -0\.5"):
        irl.TabularMDP.from_arrays(T, initial=[-0.5, 1.0, 0.5])
    with pytest.raises(MDPValidationError, match=r"initial\[1\] must be finite: got nan"):
        irl.TabularMDP.from_arrays(T, initial=[0.5, np.nan, 0.5])


@pytest.mark.parametrize("discount", [-0.1, 1.5, np.nan])
def test_discount_outside_unit_interval(discount):
    with pytest.raises(MDPValidationError, match=r"discount must lie in \[0, 1\]: got"):
        irl.TabularMDP.from_arrays(dynamics(), discount=discount)


@pytest.mark.parametrize("horizon", [0, -3, 2.5])
def test_non_positive_or_fractional_horizon(horizon):
    with pytest.raises(MDPValidationError, match=rf"horizon must be a positive integer or None: got {horizon}"):
        irl.TabularMDP.from_arrays(dynamics(), horizon=horizon)


def test_discount_and_horizon_edges_are_accepted():
    for g in (0.0, 1.0):
        assert irl.TabularMDP.from_arrays(dynamics(), discount=g).discount == g
    assert irl.TabularMDP.from_arrays(dynamics(), horizon=1).horizon == 1
    assert irl.TabularMDP.from_arrays(dynamics(), horizon=np.int64(7)).horizon == 7


def test_other_fields():
    T = dynamics()
    with pytest.raises(MDPValidationError, match=r"terminal must be a boolean mask of shape \(3,\): got \(2,\)"):
        irl.TabularMDP.from_arrays(T, terminal=[True, False])
    with pytest.raises(MDPValidationError, match=r"true_reward must have shape \(S,\) = \(3,\) or \(\.\.\., S, A\) = "
                                                 r"\(\.\.\., 3, 2\): got \(2, 3\)"):
        irl.TabularMDP.from_arrays(T, true_reward=np.zeros((A, S)))
    with pytest.raises(MDPValidationError, match="state_names must have 3 entries: got 2"):
        irl.TabularMDP.from_arrays(T, state_names=["a", "b"])
    with pytest.raises(MDPValidationError, match="action_names must have 2 entries: got 3"):
        irl.TabularMDP.from_arrays(T, action_names=["a", "b", "c"])
    with pytest.raises(MDPValidationError, match="grid_shape 2x2 must have S = 3 cells"):
        irl.TabularMDP.from_arrays(T, grid_shape=(2, 2))
    with pytest.raises(MDPValidationError, match="n_states and n_actions must be >= 1: got 0, 2"):
        irl.TabularMDP(transitions=sp.csr_matrix((0, 0)), n_states=0, n_actions=2, initial=np.zeros(0))


def test_reward_arrays():
    r = as_reward_array([1.0, 2.0, 3.0], S, A)
    assert r.shape == (S,) and r.dtype == np.float64
    sa = state_action_reward(r, S, A)
    assert sa.shape == (S, A)
    np.testing.assert_array_equal(sa[:, 1], [1, 2, 3])
    assert state_action_reward(np.zeros((4, S, A)), S, A).shape == (4, S, A)
    assert state_action_reward(torch.ones(S, A), S, A).dtype == np.float64
    with pytest.raises(MDPValidationError, match=r"reward must have shape \(S,\) = \(3,\) or \(\.\.\., S, A\) = "
                                                 r"\(\.\.\., 3, 2\): got \(2,\)"):
        as_reward_array(np.zeros(2), S, A)
    with pytest.raises(MDPValidationError, match=r"reward\[2\] must be finite: got inf"):
        as_reward_array([0.0, 0.0, np.inf], S, A)
