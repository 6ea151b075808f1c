"""Empirical Fisher and gradient variance against per-example gradients by hand."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import empirical_fisher, gradient_variance
from flatjax.problems import LeastSquares


def _squared(params, z):
    x, y = z[:-1], z[-1]
    return 0.5 * jnp.square(x @ params["weight"] + params["bias"] - y)


def _squared_gradient(params, x, y):
    residual = x @ np.asarray(params["weight"]) + float(params["bias"]) - y
    return residual[:, None] * np.hstack([np.ones((x.shape[0], 1)), x])


def _logistic(params, z):
    x, y = z[:-1], z[-1]
    return jnp.logaddexp(0.0, -y * (x @ params["weight"] + params["bias"]))


def _logistic_gradient(params, x, y):
    margin = y * (x @ np.asarray(params["weight"]) + float(params["bias"]))
    scale = -y / (1.0 + np.exp(margin))
    return scale[:, None] * np.hstack([np.ones((x.shape[0], 1)), x])


@eqx.filter_jit
def _fisher(loss, params, examples):
    return (
        empirical_fisher(loss, params, examples),
        gradient_variance(loss, params, examples),
    )


@pytest.mark.parametrize(
    "loss, gradient",
    [(_squared, _squared_gradient), (_logistic, _logistic_gradient)],
    ids=["squared", "logistic"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_empirical_fisher_of_linear_model(loss, gradient, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((7, 4))
    y = np.sign(rng.standard_normal(7))
    params = {"bias": jnp.asarray(0.3), "weight": jnp.asarray(rng.standard_normal(4))}
    examples = jnp.asarray(np.concatenate([x, y[:, None]], axis=1))
    fisher, variance = _fisher(loss, params, examples)
    # ravel_pytree orders the leaves as the dict keys: bias, then weight.
    G = gradient(params, x, y)
    dense = G.T @ G / 7
    # Same arithmetic up to float64 reassociation.
    np.testing.assert_allclose(fisher.trace, np.trace(dense), rtol=1e-12)
    np.testing.assert_allclose(
        fisher.top_eigenvalue, np.linalg.eigvalsh(dense)[-1], rtol=1e-12
    )
    mean = G.mean(axis=0)
    np.testing.assert_allclose(
        variance, np.mean(np.sum((G - mean) ** 2, 1)), rtol=1e-12
    )
    # The identity Var = tr F - |grad L|^2.
    np.testing.assert_allclose(variance, fisher.trace - mean @ mean, rtol=1e-12)


@pytest.mark.parametrize("n", [1, 40])
def test_gradient_variance_of_least_squares_is_exact(n):
    problem = LeastSquares(d=6, n=n)
    examples = problem.sample(jax.random.key(n))
    w = jnp.asarray(np.random.default_rng(100).standard_normal(6))
    x, y = np.asarray(examples[:, :-1]), np.asarray(examples[:, -1])
    gradients = (x @ np.asarray(w) - y)[:, None] * x
    deviations = gradients - gradients.mean(axis=0)
    expected = np.mean(np.sum(deviations**2, axis=1))
    variance = gradient_variance(problem.loss, w, examples)
    if n == 1:
        assert float(variance) == 0.0  # one example is its own mean
    else:
        np.testing.assert_allclose(variance, expected, rtol=1e-12)


def test_vmap_over_points_equals_a_loop():
    rng = np.random.default_rng(3)
    examples = jnp.asarray(
        np.concatenate(
            [rng.standard_normal((7, 4)), np.sign(rng.standard_normal((7, 1)))], axis=1
        )
    )
    points = {
        "bias": jnp.asarray(rng.standard_normal(32)),
        "weight": jnp.asarray(rng.standard_normal((32, 4))),
    }
    batched = jax.vmap(lambda p: _fisher(_logistic, p, examples))(points)
    for i in range(32):
        params = jax.tree_util.tree_map(lambda leaf, i=i: leaf[i], points)
        # The same arithmetic, batched: equal up to reassociation in float64.
        jax.tree_util.tree_map(
            lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-10),
            batched,
            _fisher(_logistic, params, examples),
        )
