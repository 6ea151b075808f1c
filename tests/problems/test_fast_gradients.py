"""The fused ``value_and_grad`` of SAGDTrap and SAMTrap equals autodiff of ``loss``.

Reference: ``jax.value_and_grad`` of the mean of the vmapped readable per-example
``loss`` (the definition printed in the paper), in float64. Tolerances: both sides
sum the same O(d) terms in different orders, so they agree to a few ulps of the sum
of the terms' magnitudes. With at most ~10^4 terms that is far below the stated
1e-12 relative to that magnitude, while a wrong coefficient, sign or index anywhere
shows up at O(1) relative size. Whole SAM / SA-GD / GD trajectories through
``flatjax.runner.run`` are compared between the fast problem and a copy whose
``value_and_grad`` is that autodiff reference.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from readable_reference import (
    ReadableSAGDTrap,
    ReadableSAMTrap,
    readable_value_and_grad,
)

from flatjax.optim import FunctionMaximizer, gd, sa_gd, sam
from flatjax.problems import SAGDTrap, SAMTrap
from flatjax.runner import run

RTOL = 1e-12


SAGD_CASES = {
    "n3_T4_rho0.1": dict(n=3, T=4, rho=0.1),
    "n3_T4_rho0": dict(n=3, T=4, rho=0.0),
    "n4_T8_rho0.3": dict(n=4, T=8, rho=0.3),
    "n2_T1_rho0.05": dict(n=2, T=1, rho=0.05),
}
SAM_CASES = {
    "n6_T6": dict(n=6, T=6, learning_rate=1 / 24, radius=0.5),
    "n6_T16_saturated": dict(n=6, T=16, learning_rate=1 / 24, radius=1.5),
    "n3_T4_unchecked": dict(
        n=3, T=4, learning_rate=2.0, radius=0.7, check_theorem=False
    ),
    "n6_T8_delta_schedule": dict(
        n=6,
        T=8,
        learning_rate=0.1,
        radius=0.2,
        delta=jnp.linspace(0.01, 1.0, 7),
    ),
}


def sample_points(problem, key, count=12):
    """Random points that hit every branch: ReLU kinks, zeros, mixed signs, w = 0."""
    keys = jax.random.split(key, 4)
    d = problem.d
    gaussian = jax.random.normal(keys[0], (count, d))
    scales = jnp.logspace(-8, 0, count)[:, None]
    points = gaussian * scales
    # Exact zeros (ties of max(., 0)) on a random half of the coordinates.
    zeros = jax.random.bernoulli(keys[1], 0.5, (count, d))
    points = jnp.concatenate([points, jnp.where(zeros, 0.0, gaussian * 0.3)])
    # Coordinates of one sign only (only P or only N non-zero in SAGDTrap's blocks).
    points = jnp.concatenate([points, jnp.abs(gaussian[:2]), -jnp.abs(gaussian[:2])])
    return jnp.concatenate([points, jnp.zeros((1, d))])


def assert_matches_reference(problem, S, points):
    fast_values, fast_grads = jax.vmap(problem.value_and_grad, in_axes=(0, None))(
        points, S
    )
    ref_values, ref_grads = jax.vmap(lambda w: readable_value_and_grad(problem, w, S))(
        points
    )
    # Magnitude of the summed terms: |values| and the largest |w_i * grad_i| sums.
    value_scale = jnp.maximum(
        jnp.abs(ref_values), jnp.sum(jnp.abs(points * ref_grads), axis=1)
    )
    value_error = jnp.abs(fast_values - ref_values)
    np.testing.assert_array_less(value_error, RTOL * value_scale + 1e-300)
    grad_scale = jnp.max(jnp.abs(ref_grads), axis=1, keepdims=True)
    grad_error = jnp.abs(fast_grads - ref_grads)
    np.testing.assert_array_less(
        grad_error, jnp.broadcast_to(RTOL * grad_scale + 1e-300, grad_error.shape)
    )
    assert fast_values.dtype == fast_grads.dtype == jnp.float64


@pytest.mark.parametrize("name", sorted(SAGD_CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_sagd_trap_fast_gradient_equals_autodiff(name, seed):
    problem = SAGDTrap(**SAGD_CASES[name])
    key_s, key_w = jax.random.split(jax.random.key(seed))
    S = problem.sample(key_s)
    assert_matches_reference(problem, S, sample_points(problem, key_w))


@pytest.mark.parametrize("name", sorted(SAM_CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_sam_trap_fast_gradient_equals_autodiff(name, seed):
    problem = SAMTrap(**SAM_CASES[name])
    key_s, key_w = jax.random.split(jax.random.key(seed))
    S = problem.sample(key_s)
    points = sample_points(problem, key_w)
    # Points near the trigger's kink: v_z^T w + delta_1 ~ 0 (the construction's
    # first SAM step lands there by design).
    first = jnp.zeros(problem.d).at[: -1 : problem.T].set(1.0)
    points = jnp.concatenate([points, -problem.delta1 * first[None, :]])
    assert_matches_reference(problem, S, points)


def test_sam_trap_fast_gradient_at_the_realizer_and_the_trigger():
    # Closed forms: zero loss and gradient at the realizer; at w = 0 only the
    # trigger is active, grad = delta1 * gamma * v_S.
    problem = SAMTrap(n=6, T=16, learning_rate=1 / 24, radius=0.5)
    S = problem.sample_conditioned(jax.random.key(5))
    value, grad = problem.value_and_grad(problem.realizer(), S)
    assert float(value) == 0.0 and float(jnp.max(jnp.abs(grad))) == 0.0
    value, grad = problem.value_and_grad(problem.initial_point(), S)
    kappa = 1 / (2 * (problem.d - 1))
    v_S = jnp.mean(jnp.where(S == 1, 1.0, -kappa), axis=0)
    expected = jnp.zeros(problem.d).at[:-1:16].set(v_S).at[-1].set(1.0)
    np.testing.assert_allclose(
        grad, problem.delta1 * problem.gamma * expected, rtol=1e-12
    )
    assert float(value) == pytest.approx(
        0.5 * float(problem.gamma) * float(problem.delta1) ** 2, rel=1e-12
    )


def test_fast_paths_jit_and_vmap_over_training_sets():
    problem = SAGDTrap(n=3, T=4, rho=0.1)
    S = jax.vmap(problem.sample)(jax.random.split(jax.random.key(0), 5))
    w = jax.random.normal(jax.random.key(1), (5, problem.d)) * 0.2
    batched = jax.jit(jax.vmap(problem.value_and_grad))(w, S)
    for k in range(5):
        single = problem.value_and_grad(w[k], S[k])
        np.testing.assert_allclose(batched[0][k], single[0], rtol=1e-15)
        np.testing.assert_allclose(batched[1][k], single[1], rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------------
# Whole trajectories: the fast problem and the autodiff copy run the same steps.


def assert_same_run(fast, slow, atol):
    np.testing.assert_allclose(fast.final, slow.final, rtol=0, atol=atol)
    np.testing.assert_allclose(
        fast.suffix_averages, slow.suffix_averages, rtol=0, atol=atol
    )
    for name in ("iterate_norm", "grad_norm"):
        np.testing.assert_allclose(
            fast.metrics[name], slow.metrics[name], rtol=1e-10, atol=atol
        )
    np.testing.assert_allclose(
        fast.metrics["empirical_risk"],
        slow.metrics["empirical_risk"],
        rtol=1e-10,
        atol=1e-15,
    )
    assert bool(fast.projection_acted) == bool(slow.projection_acted)
    assert int(fast.nonfinite_step) == int(slow.nonfinite_step) == -1


@pytest.mark.parametrize(
    "T, radius",
    [(16, 1 / (2 * (1 / 24) * math.sqrt(16))), (32, 0.5)],
)
def test_sam_trajectory_on_sam_trap_equals_autodiff(T, radius):
    eta = 1 / 24
    kwargs = dict(n=6, T=T, learning_rate=eta, radius=radius)
    fast, slow = SAMTrap(**kwargs), ReadableSAMTrap(**kwargs)
    S = fast.sample_conditioned(jax.random.key(T))
    runs = [
        jax.jit(lambda S, p=p: run(p, sam(eta, radius), S, T, record_population=False))(
            S
        )
        for p in (fast, slow)
    ]
    # Iterates are at most ~eta * r = 0.19 in size; agreement to 1e-12 absolute.
    assert_same_run(*runs, atol=1e-12)
    # And the theorem still happens on the fast path: the certificate is of order
    # eta^2 r^2 T (its ratio lies in [0.05, 0.08] in the saturated regime, §7.5).
    certificate = float(fast.certificate(runs[0].average, S))
    assert certificate > 0.02 * (eta * radius) ** 2 * T


def test_gd_trajectory_on_sam_trap_equals_autodiff():
    kwargs = dict(n=6, T=16, learning_rate=1 / 24, radius=0.5)
    fast, slow = SAMTrap(**kwargs), ReadableSAMTrap(**kwargs)
    S = fast.sample_conditioned(jax.random.key(0))
    runs = [
        jax.jit(lambda S, p=p: run(p, gd(1 / 24), S, 16, record_population=False))(S)
        for p in (fast, slow)
    ]
    assert_same_run(*runs, atol=1e-15)


@pytest.mark.parametrize("rho, n, T", [(0.1, 3, 16), (0.0, 4, 8), (0.1, 3, 32)])
def test_sa_gd_trajectory_on_sagd_trap_equals_autodiff(rho, n, T):
    eta = 0.25
    radius = rho + 1 / (eta * math.sqrt(T))
    fast, slow = SAGDTrap(n=n, T=T, rho=rho), ReadableSAGDTrap(n=n, T=T, rho=rho)
    S = fast.sample_conditioned(jax.random.key(T))
    oracle = FunctionMaximizer(fast.adversarial_maximizer(S))
    runs = [
        jax.jit(
            lambda S, p=p: run(
                p,
                sa_gd(eta, radius),
                S,
                T,
                maximizer=oracle,
                saer_radius=radius,
            )
        )(S)
        for p in (fast, slow)
    ]
    assert_same_run(*runs, atol=1e-14)
    np.testing.assert_allclose(
        runs[0].metrics["saer"], runs[1].metrics["saer"], rtol=1e-12
    )
    # Closed form of digest §4.3: block I holds -eta (r - rho) on its first T-1
    # coordinates, everything else is 0.
    index = int(fast.unseen_index(S))
    expected = np.zeros(fast.d)
    expected[index * T : index * T + T - 1] = -eta * (radius - rho)
    np.testing.assert_allclose(runs[0].final, expected, rtol=0, atol=1e-14)


def test_gd_trajectory_on_sagd_trap_from_a_random_start_equals_autodiff():
    # From w_1 = 0 GD never moves; start elsewhere so the gradient is exercised.
    fast, slow = SAGDTrap(n=3, T=8, rho=0.05), ReadableSAGDTrap(n=3, T=8, rho=0.05)
    S = fast.sample(jax.random.key(1))
    w1 = 0.3 * jax.random.normal(jax.random.key(2), (fast.d,)) / math.sqrt(fast.d)
    runs = [
        jax.jit(lambda S, p=p: run(p, gd(0.5), S, 20, w1=w1, record_population=False))(
            S
        )
        for p in (fast, slow)
    ]
    assert float(jnp.max(jnp.abs(runs[0].final - w1))) > 1e-3  # it moved
    assert_same_run(*runs, atol=1e-14)
