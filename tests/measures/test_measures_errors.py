"""Bad input raises ValueError (or TypeError) naming the call, argument and value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import (
    empirical_fisher,
    expected_sharpness,
    filter_normalized_direction,
    flatness_radius,
    gradient_variance,
    hessian_eigenvalues,
    hessian_frobenius_norm,
    hessian_trace,
    keskar_sharpness,
    local_entropy,
    loss_along_direction,
    loss_along_plane,
    pac_bayes_sigma,
    parameter_perturbation_ratio,
    path_norm,
    saer_gap,
)
from flatjax.optim import FunctionMaximizer

KEY = jax.random.key(0)
W = jnp.ones(3)
GRID = jnp.linspace(-1.0, 1.0, 3)
EXAMPLES = jnp.ones((4, 3))


def loss(w):
    return 0.5 * jnp.sum(w**2)


def vector_loss(w):
    return w**2


def example_loss(w, z):
    return jnp.dot(w, z) ** 2


def vector_example_loss(w, z):
    return w * z


TOP = FunctionMaximizer(lambda w, r: r * jnp.ones_like(w) / jnp.sqrt(3.0))

NON_SCALAR = [
    ("saer_gap", lambda: saer_gap(vector_loss, W, 0.5, TOP)),
    ("flatness_radius", lambda: flatness_radius(vector_loss, W, TOP)),
    ("keskar_sharpness", lambda: keskar_sharpness(vector_loss, W, 0.1, key=KEY)),
    ("hessian_eigenvalues", lambda: hessian_eigenvalues(vector_loss, W, key=KEY)),
    ("hessian_trace", lambda: hessian_trace(vector_loss, W, key=KEY)),
    (
        "hessian_frobenius_norm",
        lambda: hessian_frobenius_norm(vector_loss, W, key=KEY),
    ),
    (
        "expected_sharpness",
        lambda: expected_sharpness(vector_loss, W, 0.1, key=KEY),
    ),
    ("pac_bayes_sigma", lambda: pac_bayes_sigma(vector_loss, W, 0.1, key=KEY)),
    (
        "pac_bayes_sigma",
        lambda: parameter_perturbation_ratio(vector_loss, W, 0.1, key=KEY),
    ),
    ("local_entropy", lambda: local_entropy(vector_loss, W, 1.0, key=KEY)),
    (
        "loss_along_direction",
        lambda: loss_along_direction(vector_loss, W, W, GRID),
    ),
    (
        "loss_along_plane",
        lambda: loss_along_plane(vector_loss, W, W, W, GRID, GRID),
    ),
]


@pytest.mark.parametrize("call, thunk", NON_SCALAR, ids=[c for c, _ in NON_SCALAR])
def test_non_scalar_loss_is_refused(call, thunk):
    with pytest.raises(ValueError, match=rf"`{call}\(loss_fn=\.\.\.\)`.*shape \(3,\)"):
        thunk()


@pytest.mark.parametrize("measure", [empirical_fisher, gradient_variance])
def test_non_scalar_example_loss_is_refused(measure):
    with pytest.raises(ValueError, match=r"example_loss_fn=.*shape \(3,\)"):
        measure(vector_example_loss, W, EXAMPLES)


@pytest.mark.parametrize(
    "examples, got",
    [(jnp.ones((0, 3)), "got 0"), ((jnp.ones((4, 3)), jnp.ones((5,))), "4, 5")],
    ids=["zero examples", "mismatched leading axes"],
)
@pytest.mark.parametrize("measure", [empirical_fisher, gradient_variance])
def test_bad_examples_are_refused(measure, examples, got):
    with pytest.raises(ValueError, match=rf"{measure.__name__}\(examples.*{got}"):
        measure(lambda w, z: jnp.sum(w) * jnp.sum(z[0]), W, examples)


BAD_VALUES = [
    ("saer_gap", "radius", "got 0.0", lambda: saer_gap(loss, W, 0.0, TOP)),
    ("saer_gap", "radius", "got -1.0", lambda: saer_gap(loss, W, -1.0, TOP)),
    ("saer_gap", "key", "got None", lambda: saer_gap(loss, W, 0.5)),
    (
        "saer_gap",
        "maximizer",
        "structure",
        lambda: saer_gap(loss, W, 0.5, FunctionMaximizer(lambda w, r: (w, w))),
    ),
    (
        "saer_gap",
        "maximizer",
        "leaf shapes",
        lambda: saer_gap(loss, W, 0.5, FunctionMaximizer(lambda w, r: w[:2])),
    ),
    (
        "flatness_radius",
        "tol",
        "got -1.0",
        lambda: flatness_radius(loss, W, TOP, tol=-1.0),
    ),
    (
        "flatness_radius",
        "max_radius",
        "got 0.0",
        lambda: flatness_radius(loss, W, TOP, max_radius=0.0),
    ),
    (
        "flatness_radius",
        "num_bisections",
        "got 0",
        lambda: flatness_radius(loss, W, TOP, num_bisections=0),
    ),
    (
        "keskar_sharpness",
        "epsilon",
        "got 0.0",
        lambda: keskar_sharpness(loss, W, 0.0, key=KEY),
    ),
    (
        "keskar_sharpness",
        "num_restarts",
        "got 0",
        lambda: keskar_sharpness(loss, W, 0.1, key=KEY, num_restarts=0),
    ),
    (
        "hessian_eigenvalues",
        "k",
        "got 4",
        lambda: hessian_eigenvalues(loss, W, 4, key=KEY),
    ),
    (
        "hessian_eigenvalues",
        "k",
        "got 0",
        lambda: hessian_eigenvalues(loss, W, 0, key=KEY),
    ),
    (
        "hessian_eigenvalues",
        "num_iterations",
        "got 5",
        lambda: hessian_eigenvalues(loss, W, 1, key=KEY, num_iterations=5),
    ),
    (
        "hessian_eigenvalues",
        "num_iterations",
        "got 1",
        lambda: hessian_eigenvalues(loss, W, 2, key=KEY, num_iterations=1),
    ),
    (
        "hessian_trace",
        "num_probes",
        "got 0",
        lambda: hessian_trace(loss, W, key=KEY, num_probes=0),
    ),
    (
        "hessian_trace",
        "num_probes",
        "got 2",
        lambda: hessian_trace(loss, W, key=KEY, num_probes=2, estimator="hutch++"),
    ),
    (
        "hessian_trace",
        "estimator",
        "got 'hutch'",
        lambda: hessian_trace(loss, W, key=KEY, estimator="hutch"),
    ),
    ("hessian_trace", "key", "got None", lambda: hessian_trace(loss, W, key=None)),
    (
        "hessian_frobenius_norm",
        "num_probes",
        "got 0",
        lambda: hessian_frobenius_norm(loss, W, key=KEY, num_probes=0),
    ),
    (
        "expected_sharpness",
        "sigma",
        "got 0.0",
        lambda: expected_sharpness(loss, W, 0.0, key=KEY),
    ),
    (
        "expected_sharpness",
        "sigma",
        "got -0.1",
        lambda: expected_sharpness(loss, W, -0.1, key=KEY),
    ),
    (
        "expected_sharpness",
        "num_samples",
        "got 0",
        lambda: expected_sharpness(loss, W, 0.1, key=KEY, num_samples=0),
    ),
    (
        "pac_bayes_sigma",
        "threshold",
        "got 0.0",
        lambda: pac_bayes_sigma(loss, W, 0.0, key=KEY),
    ),
    (
        "pac_bayes_sigma",
        "max_sigma",
        "got -1.0",
        lambda: pac_bayes_sigma(loss, W, 0.1, key=KEY, max_sigma=-1.0),
    ),
    ("local_entropy", "gamma", "got 0.0", lambda: local_entropy(loss, W, 0.0, key=KEY)),
    (
        "local_entropy",
        "step_size",
        "got 0.0",
        lambda: local_entropy(loss, W, 1.0, key=KEY, step_size=0.0),
    ),
    (
        "local_entropy",
        "num_chains",
        "got 0",
        lambda: local_entropy(loss, W, 1.0, key=KEY, num_chains=0),
    ),
    (
        "local_entropy",
        "num_burnin",
        "got 10",
        lambda: local_entropy(loss, W, 1.0, key=KEY, num_steps=10, num_burnin=10),
    ),
    (
        "loss_along_direction",
        "direction",
        "leaf shapes",
        lambda: loss_along_direction(loss, W, jnp.ones(2), GRID),
    ),
    (
        "loss_along_direction",
        "alphas",
        r"shape \(3, 1\)",
        lambda: loss_along_direction(loss, W, W, GRID[:, None]),
    ),
    (
        "loss_along_plane",
        "direction2",
        "structure",
        lambda: loss_along_plane(loss, W, W, {"w": W}, GRID, GRID),
    ),
    (
        "loss_along_plane",
        "betas",
        r"shape \(0,\)",
        lambda: loss_along_plane(loss, W, W, W, GRID, jnp.ones(0)),
    ),
    (
        "path_norm",
        "input_shape",
        r"\(-1,\)",
        lambda: path_norm(lambda p, x: p @ x, jnp.ones((2, 2)), (-1,)),
    ),
    (
        "filter_normalized_direction",
        "key",
        "got None",
        lambda: filter_normalized_direction(None, W),
    ),
]


@pytest.mark.parametrize(
    "call, argument, got, thunk",
    BAD_VALUES,
    ids=[f"{c}-{a}-{g}" for c, a, g, _ in BAD_VALUES],
)
def test_bad_values_name_the_call_the_argument_and_the_value(
    call, argument, got, thunk
):
    with pytest.raises(ValueError, match=rf"`{call}\({argument}=\.\.\.\)`.*{got}"):
        thunk()


def test_non_integer_counts_are_type_errors():
    with pytest.raises(TypeError, match=r"`hessian_trace\(num_probes=\.\.\.\)`.*2\.5"):
        hessian_trace(loss, W, key=KEY, num_probes=2.5)


def test_traced_hyperparameters_pass_the_checks():
    # Hyperparameters may be traced (vmap over radii, sigmas, gammas): the checks
    # only look at concrete values.
    radii = jnp.array([0.1, 0.2])
    gaps = jax.vmap(lambda r: saer_gap(loss, W, r, TOP).value)(radii)
    # v = r 1 / sqrt(3) at w = 1: the gap is w.v + |v|^2 / 2 = sqrt(3) r + r^2 / 2.
    np.testing.assert_allclose(gaps, np.sqrt(3.0) * radii + 0.5 * radii**2, rtol=1e-14)
