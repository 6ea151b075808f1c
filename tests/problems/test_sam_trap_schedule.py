"""SAMTrap's default chain schedule keeps Lemma 8's invariant (Theorem 7's proof).

The invariant $-\\sigma \\le w_t^{(I)}(2) \\le 0$ is checked along whole SAM
trajectories, on random good-event training sets and on the extreme one where
$\\sigma$ is smallest (every coordinate but $I$ is 1 in every example). The constant
schedule 0.03 is shown to break it (the planted contrast). Tolerances: $\\sigma$'s
closed form and the run agree to a relative 1e-12 (the same few float64 operations in
another order); the invariant is tested with a relative slack of 1e-9 of $\\sigma$.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.problems import SAMTrap
from flatjax.runner import run_fused


@jax.jit
def _trajectories(problem, sets):
    return jax.vmap(lambda S: _trajectory(problem, S))(sets)


def _trajectory(problem, S):
    index = problem.unseen_index(S)
    result = run_fused(
        problem,
        "sam",
        S,
        problem.T,
        learning_rate=problem.learning_rate,
        radius=problem.radius,
        record_population=False,
        extra_metrics={"u2": lambda w: problem.blocks(w)[index, 1]},
    )
    return result.metrics["u2"]


def _holds(u2):
    u2 = np.asarray(u2)
    sigma = -u2[1]
    return bool(np.all(u2[1:] >= -sigma * (1 + 1e-9)) and np.all(u2[1:] <= 0.0))


def _extreme_training_set(n, unseen=5):
    S = np.ones((n, 2**n))
    S[:, unseen] = 0.0
    return jnp.asarray(S)


@pytest.mark.parametrize("T, radius", [(8, 0.5), (16, 3.0)])
def test_default_schedule_keeps_the_invariant_on_every_training_set(T, radius):
    problem = SAMTrap(n=6, T=T, learning_rate=1 / 24, radius=radius)
    assert bool(problem.in_proof())
    keys = jax.random.split(jax.random.key(0), 8)
    sets = jnp.concatenate(
        [jax.vmap(problem.sample_conditioned)(keys), _extreme_training_set(6)[None]]
    )
    for S, u2 in zip(sets, np.asarray(_trajectories(problem, sets)), strict=True):
        assert _holds(u2)
        assert -u2[1] == pytest.approx(float(problem.chain_sigma(S)), rel=1e-12)
        assert -u2[1] >= float(problem.sigma_lower_bound()) * (1 - 1e-12)
    # The extreme training set attains the lower bound.
    sigma = float(problem.chain_sigma(_extreme_training_set(6)))
    assert sigma == pytest.approx(float(problem.sigma_lower_bound()), rel=1e-12)


def test_constant_schedule_is_outside_the_proof():
    problem = SAMTrap(n=6, T=8, learning_rate=1 / 24, radius=0.5, delta=0.03)
    assert not bool(problem.in_proof())
    S = problem.sample_conditioned(jax.random.key(1))
    u2 = np.asarray(_trajectories(problem, S[None])[0])
    assert not _holds(u2)
    assert u2.max() > 0  # u_t(2) turns positive, as the paper's review says


def test_schedule_depends_on_sizes_only():
    first = SAMTrap.proof_schedule(6, 16)
    assert first.shape == (15,)
    assert first[0] == 0.03 and np.all(first[2:] == 0.03)
    assert 0 < first[1] < 1e-5
    a = SAMTrap(6, 16, learning_rate=1 / 24, radius=0.5)
    b = SAMTrap(6, 16, learning_rate=1 / 48, radius=2.0)
    np.testing.assert_array_equal(np.asarray(a.delta), np.asarray(b.delta))
    assert SAMTrap.proof_schedule(2, 2).shape == (1,)
