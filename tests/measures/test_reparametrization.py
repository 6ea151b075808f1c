"""Dinh et al. (2017): rescale a ReLU net's layers by alpha and 1/alpha.

The function is unchanged, so every measure defined through the function (or through
perturbations scaled by |w|) is unchanged: adaptive sharpness worst and average case
(eta = 0), the magnitude-aware sigma', relative flatness, the Fisher-Rao norm, the
path norm. The others change by the predicted factor: with S = diag(s) the rescaling,
the Hessian becomes S^-1 H S^-1, so its trace is tr(H_1)/alpha^2 + alpha^2 tr(H_2) +
tr(H_3) over the layers' blocks, and ||w||^2 becomes alpha^2 ||W_1||^2 +
||W_2||^2/alpha^2 + ||W_3||^2.

Tolerances: the invariant measures run the same arithmetic on rescaled numbers (the
ascent and the noise see identical losses), so they agree to 1e-9 relative; the
dense Hessians agree to 1e-10 relative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from flatjax.measures import (
    adaptive_sharpness,
    average_adaptive_sharpness,
    fisher_rao_norm,
    hessian_eigenvalues,
    pac_bayes_sigma,
    path_norm,
    relative_flatness,
)

ALPHA = 4.0
RNG = np.random.default_rng(11)
X = jnp.asarray(RNG.standard_normal((20, 3)))
Y = jnp.asarray(RNG.standard_normal(20))
PARAMS = {
    "w1": jnp.asarray(RNG.standard_normal((5, 3))),
    "w2": jnp.asarray(RNG.standard_normal((4, 5))),
    "w3": jnp.asarray(RNG.standard_normal((1, 4))),
}


def net(params, x):
    hidden = jax.nn.relu(params["w1"] @ x)
    hidden = jax.nn.relu(params["w2"] @ hidden)
    return params["w3"] @ hidden


def example_loss(params, z):
    x, y = z
    return 0.5 * (net(params, x)[0] - y) ** 2


def loss(params):
    return jnp.mean(jax.vmap(example_loss, in_axes=(None, 0))(params, (X, Y)))


def rescale(params, alpha):
    return {"w1": alpha * params["w1"], "w2": params["w2"] / alpha, "w3": params["w3"]}


SCALED = rescale(PARAMS, ALPHA)


def test_the_function_is_unchanged():
    before = jax.vmap(net, in_axes=(None, 0))(PARAMS, X)
    after = jax.vmap(net, in_axes=(None, 0))(SCALED, X)
    np.testing.assert_allclose(after, before, rtol=1e-13)
    np.testing.assert_allclose(loss(SCALED), loss(PARAMS), rtol=1e-13)


@pytest.mark.parametrize(
    "measure",
    [
        lambda p: adaptive_sharpness(loss, p, 0.05, key=jax.random.key(0)).value,
        lambda p: (
            adaptive_sharpness(loss, p, 0.05, key=jax.random.key(0), p="inf").value
        ),
        lambda p: (
            average_adaptive_sharpness(loss, p, 0.05, key=jax.random.key(1)).value
        ),
        lambda p: (
            pac_bayes_sigma(
                loss, p, 0.01, key=jax.random.key(2), magnitude_offset=0.0
            ).value
        ),
        lambda p: relative_flatness(loss, p, lambda q: q["w1"]).value,
        lambda p: relative_flatness(loss, p, lambda q: q["w2"]).value,
        lambda p: fisher_rao_norm(example_loss, p, (X, Y)),
        lambda p: path_norm(net, p, (3,)),
    ],
    ids=[
        "adaptive_l2",
        "adaptive_linf",
        "adaptive_average",
        "pac_bayes_mag_sigma",
        "relative_flatness_w1",
        "relative_flatness_w2",
        "fisher_rao",
        "path_norm",
    ],
)
def test_invariant_measures_are_unchanged(measure):
    before, after = measure(PARAMS), measure(SCALED)
    assert float(before) > 0
    np.testing.assert_allclose(after, before, rtol=1e-9)


def _block_traces(params):
    x0, unravel = ravel_pytree(params)
    hessian = jax.hessian(lambda flat: loss(unravel(flat)))(x0)
    diagonal = unravel(jnp.diag(hessian))
    return {name: jnp.sum(block) for name, block in diagonal.items()}, hessian


def test_the_hessian_changes_by_the_predicted_factor():
    traces, hessian = _block_traces(PARAMS)
    scaled_traces, scaled_hessian = _block_traces(SCALED)
    predicted = {
        "w1": traces["w1"] / ALPHA**2,
        "w2": traces["w2"] * ALPHA**2,
        "w3": traces["w3"],
    }
    for name in predicted:
        np.testing.assert_allclose(scaled_traces[name], predicted[name], rtol=1e-10)
    # The full Hessian: S^-1 H S^-1 with s = alpha on w1, 1/alpha on w2, 1 on w3.
    s = ravel_pytree(rescale(jax.tree_util.tree_map(jnp.ones_like, PARAMS), ALPHA))[0]
    np.testing.assert_allclose(
        scaled_hessian, hessian / s[:, None] / s[None, :], rtol=1e-10, atol=1e-12
    )
    # ... so the trace and the top eigenvalue are not invariant.
    assert abs(jnp.trace(scaled_hessian) / jnp.trace(hessian) - 1) > 0.5
    top = hessian_eigenvalues(loss, PARAMS, key=jax.random.key(0), num_iterations=30)
    scaled_top = hessian_eigenvalues(
        loss, SCALED, key=jax.random.key(0), num_iterations=30
    )
    np.testing.assert_allclose(top.values[0], jnp.linalg.eigvalsh(hessian)[-1], 1e-8)
    assert abs(scaled_top.values[0] / top.values[0] - 1) > 0.5


def test_parameter_norm_changes_by_the_predicted_factor():
    def squared_norm(params):
        return sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(params))

    predicted = (
        ALPHA**2 * jnp.sum(PARAMS["w1"] ** 2)
        + jnp.sum(PARAMS["w2"] ** 2) / ALPHA**2
        + jnp.sum(PARAMS["w3"] ** 2)
    )
    np.testing.assert_allclose(squared_norm(SCALED), predicted, rtol=1e-13)
