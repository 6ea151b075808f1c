"""PAC-Bayes expected sharpness, the sigma bisection and Jiang et al.'s ratio.

For a quadratic $\\frac12 w^\\top A w$ each antithetic sample is exactly
$\\frac12\\sigma^2u^\\top Au$, so the estimate has mean $\\frac12\\sigma^2\\mathrm{tr}A$
at every $w$, and the bisection's answer is a closed form of the same draws.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import (
    expected_sharpness,
    pac_bayes_sigma,
    parameter_perturbation_ratio,
)

SPECTRUM = jnp.linspace(0.1, 2.0, 10)
TRACE = float(jnp.sum(SPECTRUM))


def _matrix(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((10, 10)))
    return jnp.asarray((q * np.asarray(SPECTRUM)) @ q.T)


def _loss(matrix):
    return lambda w: 0.5 * w @ matrix @ w


@functools.partial(jax.jit, static_argnames="num_samples")
def _expected(matrix, w, sigma, key, num_samples=400):
    return expected_sharpness(_loss(matrix), w, sigma, key=key, num_samples=num_samples)


@jax.jit
def _sigma_and_ratio(matrix, w, threshold, key, max_sigma=1.0):
    loss_fn = _loss(matrix)
    options = dict(key=key, num_samples=400, max_sigma=max_sigma)
    sigma = pac_bayes_sigma(loss_fn, w, threshold, **options)
    ratio = parameter_perturbation_ratio(loss_fn, w, threshold, **options)
    return sigma, ratio


@pytest.mark.parametrize("sigma", [0.01, 0.3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_sharpness_of_quadratic_is_half_sigma_squared_trace(sigma, seed):
    matrix = _matrix(seed)
    w = jnp.asarray(np.random.default_rng(10 + seed).standard_normal(10))
    key = jax.random.key(seed)
    estimate = _expected(matrix, w, sigma, key)
    # Mean of 400 i.i.d. samples of (sigma^2/2) u^T A u: 4 standard errors.
    assert abs(float(estimate.value) - 0.5 * sigma**2 * TRACE) < 4 * estimate.stderr
    # Antithetic pairs cancel the gradient term exactly, so the same draws give
    # the same estimate at w = 0, up to the cancellation in L(w +- u) - L(w):
    # relative rounding about eps * L(w) / increase < 1e-11.
    at_zero = _expected(matrix, jnp.zeros(10), sigma, key)
    np.testing.assert_allclose(estimate.value, at_zero.value, rtol=1e-9)


@pytest.mark.parametrize("threshold", [1e-3, 0.05])
@pytest.mark.parametrize("seed", [0, 1])
def test_sigma_bisection_and_ratio_of_quadratic(threshold, seed):
    matrix = _matrix(seed)
    w = jnp.asarray(np.random.default_rng(10 + seed).standard_normal(10))
    key = jax.random.key(seed)
    sigma, ratio = _sigma_and_ratio(matrix, w, threshold, key)
    assert bool(sigma.bracketed)
    # Common random numbers: at scale s the estimate is s^2 * E1 with E1 the
    # estimate at s = 1 from the same draws, so sigma' = sqrt(threshold / E1),
    # to the bisection width 2**-40 (max_sigma = 1).
    at_one = _expected(matrix, w, 1.0, key)
    closed_form = np.sqrt(threshold / float(at_one.value))
    assert float(sigma.value) <= closed_form + 1e-15
    assert float(sigma.upper) >= closed_form - 1e-15
    assert float(sigma.upper - sigma.value) <= 2.0**-40 * (1 + 1e-9)
    # Against the exact sqrt(2 threshold / tr A): sigma' = sqrt(threshold / E1) has
    # relative standard error SE(E1) / (2 E1) by the delta method; 4 of them.
    exact = np.sqrt(2 * threshold / TRACE)
    relative_stderr = float(at_one.stderr / (2 * at_one.value))
    assert abs(float(sigma.value) / exact - 1) < 4 * relative_stderr
    # Jiang et al.'s ratio |w|^2 / sigma'^2 = |w|^2 E1 / threshold for these draws,
    # relative error from the bracket below 2 * 2**-40 / sigma' < 1e-9.
    expected_ratio = float(jnp.sum(w**2)) * float(at_one.value) / threshold
    np.testing.assert_allclose(ratio.value, expected_ratio, rtol=1e-9)
    np.testing.assert_array_equal(ratio.sigma.value, sigma.value)


def test_sigma_saturates_when_the_threshold_is_never_reached():
    w = jnp.ones(10)
    sigma, ratio = _sigma_and_ratio(_matrix(), w, 1e6, jax.random.key(0), 0.5)
    assert not bool(sigma.bracketed)
    assert float(sigma.value) == 0.5
    assert float(sigma.upper) == float("inf")
    np.testing.assert_allclose(ratio.value, 10 / 0.5**2, rtol=1e-14)


@pytest.mark.parametrize("measure", ["expected_sharpness", "sigma_and_ratio"])
def test_vmap_over_points_and_keys_equals_a_loop(measure):
    matrix = _matrix()
    points = jnp.asarray(np.random.default_rng(5).standard_normal((32, 10)))
    keys = jax.random.split(jax.random.key(5), 32)
    if measure == "expected_sharpness":
        fn = lambda w, key: _expected(matrix, w, 0.1, key)  # noqa: E731
    else:
        fn = lambda w, key: _sigma_and_ratio(matrix, w, 0.01, key)  # noqa: E731
    batched = jax.vmap(fn)(points, keys)
    for i, (w, key) in enumerate(zip(points, keys, strict=True)):
        # The same arithmetic, batched: equal up to reassociation in float64.
        jax.tree_util.tree_map(
            lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-9),
            batched,
            fn(w, key),
        )
