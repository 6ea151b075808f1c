"""Curvature measures against quadratics with a prescribed spectrum and dense Hessians.

The quadratic's matrix is an argument of module-level jitted wrappers, so cases of
one shape share one compilation.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from flatjax.measures import hessian_eigenvalues, hessian_frobenius_norm, hessian_trace


def _quadratic(spectrum, seed):
    """The matrix Q diag(spectrum) Q^T with Q a random orthogonal matrix."""
    d = spectrum.shape[0]
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return jnp.asarray((q * np.asarray(spectrum)) @ q.T)


def _loss(matrix):
    return lambda w: 0.5 * w @ matrix @ w


def _point(d, seed=100):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(d))


@functools.partial(jax.jit, static_argnames=("k", "num_iterations"))
def _eigenvalues(matrix, w, key, k, num_iterations=None):
    return hessian_eigenvalues(
        _loss(matrix), w, k, key=key, num_iterations=num_iterations
    )


@functools.partial(jax.jit, static_argnames=("num_probes", "estimator"))
def _trace(matrix, w, key, num_probes, estimator="hutchinson"):
    return hessian_trace(
        _loss(matrix), w, key=key, num_probes=num_probes, estimator=estimator
    )


@jax.jit
def _frobenius(matrix, w, key):
    return hessian_frobenius_norm(_loss(matrix), w, key=key, num_probes=400)


@eqx.filter_jit
def _mlp_measures(model, x, y, key):
    """Dense Hessian and the three curvature measures of an equinox MLP's loss."""
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss_fn(p):
        predictions = jax.vmap(eqx.combine(p, static))(x)[:, 0]
        return 0.5 * jnp.mean(jnp.square(predictions - y))

    x0, unravel = ravel_pytree(params)
    hessian = jax.hessian(lambda flat: loss_fn(unravel(flat)))(x0)
    d = x0.shape[0]
    return (
        params,
        hessian,
        hessian_eigenvalues(loss_fn, params, 2, key=key, num_iterations=d),
        hessian_trace(loss_fn, params, key=key, num_probes=400),
        hessian_frobenius_norm(loss_fn, params, key=key, num_probes=400),
    )


# ---------------------------------------------------------------------- Lanczos


@pytest.mark.parametrize("d, num_iterations", [(12, 12), (60, 30)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_eigenvalues_of_prescribed_spectrum(d, num_iterations, seed):
    top = jnp.array([10.0, 7.0, 5.0])
    spectrum = jnp.concatenate([top, jnp.linspace(-1.0, 1.0, d - 3)])
    matrix = _quadratic(spectrum, seed)
    result = _eigenvalues(
        matrix, _point(d), jax.random.key(seed), k=3, num_iterations=num_iterations
    )
    # With m = d the Krylov space is everything: exact up to roundoff. With m = 30,
    # d = 60 the Kaniel-Paige bound for gap ratio (10-7)/(7+1) is below 1e-20, so
    # the 1e-6 relative tolerance of the spec is far from binding in both cases.
    np.testing.assert_allclose(result.values, top, rtol=1e-6)
    assert bool(jnp.all(result.converged))
    # The Ritz vectors are eigenvectors: residual <= 1e-6 * lambda_max.
    residuals = result.vectors @ matrix - result.values[:, None] * result.vectors
    assert float(jnp.max(jnp.linalg.norm(residuals, axis=1))) < 1e-5
    np.testing.assert_allclose(jnp.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-12)


def test_repeated_eigenvalues_need_the_breakdown_restart():
    # Two distinct eigenvalues: the Krylov space of one start vector has dimension
    # 2, so Lanczos breaks down and must restart to see the other copies.
    spectrum = jnp.array([4.0, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    result = _eigenvalues(_quadratic(spectrum, 3), _point(8), jax.random.key(0), k=4)
    np.testing.assert_allclose(result.values, [4.0, 4.0, 4.0, 1.0], rtol=1e-10)


def test_zero_hessian_gives_zero_eigenvalues_not_nan():
    # A flat region (the paper's rho-flat minima): H = 0, so every beta_j is 0 and
    # every step is a breakdown.
    result = _eigenvalues(jnp.zeros((8, 8)), _point(8), jax.random.key(0), k=4)
    np.testing.assert_array_equal(result.values, jnp.zeros(4))
    assert bool(jnp.all(result.converged))


def test_curvature_of_mlp_parameters_matches_dense_hessian():
    model = eqx.nn.MLP(2, 1, 4, 1, activation=jnp.tanh, key=jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((8, 2)))
    params, hessian, eigen, trace, frobenius = _mlp_measures(
        model, x, jnp.sin(x[:, 0]), jax.random.key(0)
    )
    expected = np.linalg.eigvalsh(np.asarray(hessian))[::-1][:2]
    # m = d: exact up to roundoff of order eps * ||H|| * d.
    np.testing.assert_allclose(eigen.values, expected, rtol=1e-9)
    first = jax.tree_util.tree_map(lambda leaf: leaf[0], eigen.vectors)
    assert jax.tree_util.tree_structure(first) == jax.tree_util.tree_structure(params)
    # Means of 400 i.i.d. probes: 4 standard errors.
    assert abs(trace.value - jnp.trace(hessian)) < 4 * trace.stderr
    assert abs(frobenius.squared - jnp.sum(hessian**2)) < 4 * frobenius.squared_stderr


# ------------------------------------------------------------------------ trace


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hutchinson_trace_within_four_standard_errors(seed):
    spectrum = jnp.linspace(0.1, 3.0, 30)
    matrix = _quadratic(spectrum, seed)
    estimate = _trace(matrix, _point(30), jax.random.key(seed), num_probes=200)
    # The mean of 200 i.i.d. samples is close to normal: |error| > 4 SE has
    # probability about 6e-5 per seed.
    assert abs(float(estimate.value) - float(jnp.sum(spectrum))) < 4 * estimate.stderr
    # The standard error estimates the exact one, sqrt(2(|A|_F^2 - sum A_ii^2)/m);
    # the sample standard deviation of 200 samples is within 30% of it.
    exact = jnp.sqrt(2 * (jnp.sum(matrix**2) - jnp.sum(jnp.diag(matrix) ** 2)) / 200)
    np.testing.assert_allclose(estimate.stderr, exact, rtol=0.3)


def test_hutchpp_has_lower_variance_than_hutchinson_at_equal_budget():
    # A decaying spectrum (lambda_i = 1/i^2), where Hutch++'s sketch captures the
    # top eigenvalues exactly (Meyer et al. 2021). Both use 30 matrix-vector
    # products per estimate; 64 independent estimates each.
    d = 60
    spectrum = 1.0 / jnp.arange(1.0, d + 1.0) ** 2
    loss_fn, w = _loss(_quadratic(spectrum, 0)), _point(d)
    keys = jax.random.split(jax.random.key(1), 64)

    @jax.jit
    @jax.vmap
    def both(key):
        plain = hessian_trace(loss_fn, w, key=key, num_probes=30)
        plus = hessian_trace(loss_fn, w, key=key, num_probes=30, estimator="hutch++")
        return plain.value, plus.value

    plain, plus = both(keys)
    trace = float(jnp.sum(spectrum))
    # Unbiased: each mean of 64 within 4 of its standard errors.
    for values in (plain, plus):
        assert abs(float(jnp.mean(values)) - trace) < 4 * float(jnp.std(values)) / 8
    # "Visibly lower": a factor 10 in variance. The measured ratio is about 430.
    assert float(jnp.var(plus)) < float(jnp.var(plain)) / 10


def test_hutchpp_is_exact_for_low_rank():
    # Rank 3 <= sketch size 4: the deflated remainder is 0 and so is the error.
    spectrum = jnp.concatenate([jnp.array([5.0, 2.0, 1.0]), jnp.zeros(17)])
    estimate = _trace(
        _quadratic(spectrum, 2),
        _point(20),
        jax.random.key(0),
        num_probes=12,
        estimator="hutch++",
    )
    np.testing.assert_allclose(estimate.value, 8.0, rtol=1e-10)
    assert float(estimate.stderr) < 1e-10


# -------------------------------------------------------------------- Frobenius


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frobenius_norm_matches_dense(seed):
    matrix = _quadratic(jnp.linspace(-1.0, 2.0, 20), seed)
    result = _frobenius(matrix, _point(20), jax.random.key(seed))
    exact = float(jnp.sum(matrix**2))
    # Mean of 400 i.i.d. samples: 4 standard errors (probability ~6e-5 per seed).
    assert abs(float(result.squared) - exact) < 4 * result.squared_stderr
    np.testing.assert_allclose(result.value**2, result.squared, rtol=1e-12)


# ------------------------------------------------------------------------- vmap


def _batch(d, seed=7):
    """32 parameter points and 32 keys."""
    points = jnp.asarray(np.random.default_rng(seed).standard_normal((32, d)))
    return points, jax.random.split(jax.random.key(seed), 32)


@pytest.mark.parametrize(
    "measure, d",
    [
        (functools.partial(_eigenvalues, k=3, num_iterations=12), 12),
        (functools.partial(_trace, num_probes=12, estimator="hutch++"), 20),
        (_frobenius, 20),
    ],
    ids=["eigenvalues", "hutch++", "frobenius"],
)
def test_vmap_over_points_and_keys_equals_a_loop(measure, d):
    matrix = _quadratic(jnp.linspace(-1.0, 3.0, d), 4)
    points, keys = _batch(d)
    batched = jax.vmap(measure, in_axes=(None, 0, 0))(matrix, points, keys)
    looped = [
        measure(matrix, point, key) for point, key in zip(points, keys, strict=True)
    ]
    looped = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *looped)
    # The same arithmetic, batched: equal up to reassociation in float64.
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
        batched,
        looped,
    )
