"""Path norm by hand, exact parabolas along directions, filter normalization."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import (
    filter_normalized_direction,
    loss_along_direction,
    loss_along_plane,
    path_norm,
)


def _two_layer(params, x):
    return params["w2"] @ jax.nn.relu(params["w1"] @ x + params["b1"]) + params["b2"]


def _path_norm_by_hand(w1, b1, w2, b2):
    """Enumerate every path: input i -> hidden j -> output k, and the bias paths."""
    w1, b1, w2, b2 = map(np.asarray, (w1, b1, w2, b2))
    hidden, inputs = w1.shape
    outputs = w2.shape[0]
    total = 0.0
    for k, j in itertools.product(range(outputs), range(hidden)):
        for i in range(inputs):
            total += w2[k, j] ** 2 * w1[j, i] ** 2
        total += w2[k, j] ** 2 * b1[j] ** 2  # bias b1[j] -> hidden j -> output k
    return total + float(np.sum(b2**2))


@jax.jit
def _path_norm(params):
    return path_norm(_two_layer, params, (3,))


@jax.jit
def _slices(matrix, w, d1, d2):
    def loss_fn(u):
        return 0.5 * u @ matrix @ u

    alphas, betas = jnp.linspace(-2.0, 2.0, 9), jnp.linspace(-1.0, 1.0, 5)
    return (
        loss_along_direction(loss_fn, w, d1, alphas),
        loss_along_plane(loss_fn, w, d1, d2, alphas, betas),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_path_norm_of_two_layer_relu_net_by_hand(seed):
    rng = np.random.default_rng(seed)
    shapes = {"w1": (5, 3), "b1": (5,), "w2": (2, 5), "b2": (2,)}
    params = {name: jnp.asarray(rng.standard_normal(s)) for name, s in shapes.items()}
    expected = _path_norm_by_hand(**params)
    np.testing.assert_allclose(
        path_norm(_two_layer, params, (3,)), expected, rtol=1e-12
    )


def test_path_norm_of_equinox_relu_mlp_by_hand():
    model = eqx.nn.MLP(3, 2, 5, 1, activation=jax.nn.relu, key=jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    first, last = model.layers
    expected = _path_norm_by_hand(first.weight, first.bias, last.weight, last.bias)
    result = path_norm(lambda p, x: eqx.combine(p, static)(x), params, (3,))
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def _quadratic_pieces(seed):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((4, 4))
    matrix = b @ b.T - np.eye(4)  # indefinite in general
    w, d1, d2 = rng.standard_normal((3, 4))
    return tuple(map(jnp.asarray, (matrix, w, d1, d2)))


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_along_directions_of_quadratic_is_the_exact_parabola(seed):
    matrix, w, d1, d2 = _quadratic_pieces(seed)
    line, plane = _slices(matrix, w, d1, d2)
    matrix, w, d1, d2 = map(np.asarray, (matrix, w, d1, d2))
    alphas, betas = np.linspace(-2.0, 2.0, 9), np.linspace(-1.0, 1.0, 5)
    loss, g = 0.5 * w @ matrix @ w, matrix @ w
    parabola = loss + alphas * (g @ d1) + 0.5 * alphas**2 * (d1 @ matrix @ d1)
    # Float64 rounding relative to the largest term.
    np.testing.assert_allclose(line, parabola, rtol=1e-12, atol=1e-12)
    a, b = alphas[:, None], betas[None, :]
    paraboloid = (
        loss
        + a * (g @ d1)
        + b * (g @ d2)
        + 0.5 * a**2 * (d1 @ matrix @ d1)
        + a * b * (d1 @ matrix @ d2)
        + 0.5 * b**2 * (d2 @ matrix @ d2)
    )
    assert plane.shape == (9, 5)
    np.testing.assert_allclose(plane, paraboloid, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(plane[:, 2], line, rtol=1e-14)  # beta = 0 column


def test_filter_normalized_direction_matches_filter_norms():
    w = {
        "conv": jnp.asarray(np.random.default_rng(0).standard_normal((3, 2, 4, 4))),
        "linear": jnp.asarray(np.random.default_rng(1).standard_normal((5, 7))),
        "bias": jnp.ones(5),
        "scale": jnp.asarray(2.0),
    }
    d = filter_normalized_direction(jax.random.key(2), w)
    for name, axes in (("conv", (1, 2, 3)), ("linear", (1,))):
        np.testing.assert_allclose(
            jnp.sqrt(jnp.sum(d[name] ** 2, axis=axes)),
            jnp.sqrt(jnp.sum(w[name] ** 2, axis=axes)),
            rtol=1e-12,
        )
        assert float(jnp.abs(jnp.sum(d[name] * w[name]))) > 0  # random, not w
    np.testing.assert_array_equal(d["bias"], jnp.zeros(5))
    assert float(d["scale"]) == 0.0
    with_vectors = filter_normalized_direction(
        jax.random.key(2), w, include_vectors=True
    )
    np.testing.assert_allclose(jnp.linalg.norm(with_vectors["bias"]), np.sqrt(5.0))
    np.testing.assert_allclose(jnp.abs(with_vectors["scale"]), 2.0)


def test_filter_normalized_slice_of_mlp_parameters():
    model = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((6, 2)))

    def loss_fn(p):
        return jnp.mean(jax.vmap(eqx.combine(p, static))(x) ** 2)

    direction = filter_normalized_direction(jax.random.key(2), params)
    alphas = jnp.array([0.0, 0.5])
    line = loss_along_direction(loss_fn, params, direction, alphas)
    np.testing.assert_allclose(line[0], loss_fn(params), rtol=1e-14)
    moved = jax.tree_util.tree_map(lambda p, v: p + 0.5 * v, params, direction)
    np.testing.assert_allclose(line[1], loss_fn(moved), rtol=1e-12)


def test_vmap_over_points_equals_a_loop():
    matrix, _, d1, d2 = _quadratic_pieces(0)
    points = jnp.asarray(np.random.default_rng(5).standard_normal((32, 4)))
    rng = np.random.default_rng(6)
    shapes = {"w1": (32, 5, 3), "b1": (32, 5), "w2": (32, 2, 5), "b2": (32, 2)}
    networks = {name: jnp.asarray(rng.standard_normal(s)) for name, s in shapes.items()}
    batched_slices = jax.vmap(_slices, in_axes=(None, 0, None, None))(
        matrix, points, d1, d2
    )
    batched_norms = jax.vmap(_path_norm)(networks)
    for i in range(32):
        line, plane = _slices(matrix, points[i], d1, d2)
        # The same arithmetic, batched: equal up to reassociation in float64.
        np.testing.assert_allclose(batched_slices[0][i], line, rtol=1e-12)
        np.testing.assert_allclose(batched_slices[1][i], plane, rtol=1e-12)
        params = {name: leaf[i] for name, leaf in networks.items()}
        np.testing.assert_allclose(batched_norms[i], _path_norm(params), rtol=1e-12)
