"""Scale-aware and network measures against closed forms (measures.md, last table).

Tolerances: exact maximizations (trust region, box vertex) are compared at a
relative 1e-6, the ascent's convergence on these small well-separated problems;
the bisections run 40 (30) steps on [0, 1], a bracket of 1e-12 (1e-9). Stochastic
estimates are checked at 4 standard errors, or exactly where the same random numbers
give a deterministic identity (the quadratic's sigma' from the same draws).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import (
    adaptive_sharpness,
    average_adaptive_sharpness,
    distance_from_initialization,
    expected_sharpness,
    fisher_rao_norm,
    keskar_sharpness,
    pac_bayes_init_bound,
    pac_bayes_sigma,
    parameter_perturbation_ratio,
    relative_flatness,
    sharpness_alpha,
)
from flatjax.optim import maximize_quadratic_on_ball


def _orthogonal(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def _quadratic(matrix):
    return lambda w: 0.5 * w @ matrix @ w


# ---------------------------------------------------------- adaptive sharpness


def test_worst_case_adaptive_sharpness_at_a_null_vector():
    # A w = 0: the maximum is (1/2) rho^2 lambda_max(C A C), C = diag(|w|).
    q = _orthogonal(6, 0)
    matrix = jnp.asarray((q * np.array([0.0, 1.0, 2.0, 3.0, 4.0, 8.0])) @ q.T)
    w = jnp.asarray(q[:, 0])
    scaled = jnp.abs(w)[:, None] * matrix * jnp.abs(w)[None, :]
    rho = 0.3
    exact = 0.5 * rho**2 * jnp.linalg.eigvalsh(scaled)[-1]
    result = adaptive_sharpness(_quadratic(matrix), w, rho, key=jax.random.key(0))
    assert result.method == "lower_bound"
    assert float(result.value) <= float(exact) * (1 + 1e-12)
    np.testing.assert_allclose(result.value, exact, rtol=1e-6)


@pytest.mark.parametrize("eta", [0.0, 0.1])
def test_worst_case_adaptive_sharpness_is_the_trust_region_value(eta):
    q = _orthogonal(5, 1)
    matrix = jnp.asarray((q * np.array([0.5, 1.0, 2.0, 3.0, 6.0])) @ q.T)
    w = jnp.asarray(np.random.default_rng(2).standard_normal(5))
    c = jnp.abs(w) + eta
    rho = 0.2
    scaled = c[:, None] * matrix * c[None, :]
    u = maximize_quadratic_on_ball(scaled, c * (matrix @ w), rho)
    exact = 0.5 * u @ scaled @ u + (c * (matrix @ w)) @ u
    result = adaptive_sharpness(
        _quadratic(matrix), w, rho, key=jax.random.key(1), eta=eta
    )
    assert float(result.value) <= float(exact) * (1 + 1e-12)
    np.testing.assert_allclose(result.value, exact, rtol=1e-6)
    delta = result.perturbation
    assert float(jnp.linalg.norm(delta / c)) <= rho * (1 + 1e-12)


def test_worst_case_adaptive_sharpness_on_a_box_is_the_vertex():
    a = jnp.array([1.0, 2.0, 0.5, 3.0])
    w = jnp.array([1.0, -0.5, 2.0, 0.25])
    rho = 0.1
    exact = 0.5 * jnp.sum(a * (jnp.abs(w) * (1 + rho)) ** 2 - a * w**2)
    result = adaptive_sharpness(
        lambda v: 0.5 * jnp.sum(a * v**2), w, rho, key=jax.random.key(0), p="inf"
    )
    np.testing.assert_allclose(result.value, exact, rtol=1e-12)


@pytest.mark.parametrize("eta", [0.0, 0.2])
def test_average_adaptive_sharpness_is_half_rho_squared_trace_of_cac(eta):
    q = _orthogonal(5, 3)
    matrix = jnp.asarray((q * np.array([0.5, 1.0, 2.0, 3.0, 6.0])) @ q.T)
    w = jnp.asarray(np.random.default_rng(4).standard_normal(5))
    c = jnp.abs(w) + eta
    rho = 0.3
    exact = 0.5 * rho**2 * jnp.sum(jnp.diag(matrix) * c**2)
    for seed in range(3):
        result = average_adaptive_sharpness(
            _quadratic(matrix),
            w,
            rho,
            key=jax.random.key(seed),
            eta=eta,
            num_samples=400,
        )
        assert abs(result.value - exact) < 4 * result.stderr


# ------------------------------------------------- magnitude-aware PAC-Bayes


def test_magnitude_aware_sigma_from_the_same_draws():
    # For a quadratic each antithetic sample is sigma^2 K_i with K_i independent of
    # sigma, so sigma' = sqrt(tau / K) with K the estimate at sigma = 1 from the same
    # draws: exact up to the 1e-12 bisection bracket.
    q = _orthogonal(6, 5)
    matrix = jnp.asarray((q * np.arange(1.0, 7.0)) @ q.T)
    w = jnp.asarray(np.random.default_rng(6).standard_normal(6))
    key, tau, epsilon = jax.random.key(2), 0.01, 1e-3
    k_hat = expected_sharpness(
        _quadratic(matrix), w, 1.0, key=key, num_samples=50, magnitude_offset=epsilon
    ).value
    sigma = pac_bayes_sigma(
        _quadratic(matrix), w, tau, key=key, num_samples=50, magnitude_offset=epsilon
    )
    np.testing.assert_allclose(sigma.value, jnp.sqrt(tau / k_hat), rtol=1e-10)
    # And K estimates (1/2) sum_i a_ii (|w_i| + eps)^2.
    exact = 0.5 * jnp.sum(jnp.diag(matrix) * (jnp.abs(w) + epsilon) ** 2)
    many = expected_sharpness(
        _quadratic(matrix), w, 1.0, key=key, num_samples=2000, magnitude_offset=epsilon
    )
    assert abs(many.value - exact) < 4 * many.stderr


def test_init_centred_ratio_and_bound():
    loss = _quadratic(jnp.diag(jnp.array([1.0, 2.0, 3.0])))
    w, init = jnp.array([1.0, 2.0, -1.0]), jnp.array([0.5, 2.0, 1.0])
    key, tau = jax.random.key(0), 0.02
    sigma = pac_bayes_sigma(loss, w, tau, key=key)
    distance = distance_from_initialization(w, init)
    np.testing.assert_allclose(distance, jnp.sqrt(0.25 + 4.0), rtol=1e-15)
    ratio = parameter_perturbation_ratio(loss, w, tau, key=key, init=init)
    np.testing.assert_allclose(ratio.value, distance**2 / sigma.value**2, rtol=1e-12)
    at_zero = parameter_perturbation_ratio(loss, w, tau, key=key)
    np.testing.assert_allclose(at_zero.value, 6.0 / sigma.value**2, rtol=1e-12)
    bound = pac_bayes_init_bound(loss, w, init, tau, 1000, key=key)
    expected = distance**2 / (4 * sigma.value**2) + jnp.log(1000 / sigma.value) + 10.0
    np.testing.assert_allclose(bound.value, expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"distance_from_initialization\(init="):
        distance_from_initialization(w, jnp.zeros(2))
    with pytest.raises(ValueError, match=r"pac_bayes_init_bound\(num_examples="):
        pac_bayes_init_bound(loss, w, init, tau, 0, key=key)


# ---------------------------------------------------------------- alpha search


@pytest.mark.parametrize("offset", [None, 1.0, 1e-3])
def test_sharpness_alpha_on_a_separable_quadratic(offset):
    # Box half-widths alpha * b: the maximum is at the vertex u = alpha b sign(w),
    # an increase of alpha sum a b |w| + (alpha^2 / 2) sum a b^2 = tau.
    a = jnp.array([1.0, 2.0, 0.5, 3.0])
    w = jnp.array([1.0, -0.5, 2.0, 0.25])
    b = jnp.ones(4) if offset is None else jnp.abs(w) + offset
    tau = 0.05
    quadratic_term = 0.5 * jnp.sum(a * b**2)
    linear_term = jnp.sum(a * b * jnp.abs(w))
    exact = (-linear_term + jnp.sqrt(linear_term**2 + 4 * quadratic_term * tau)) / (
        2 * quadratic_term
    )
    result = sharpness_alpha(
        lambda v: 0.5 * jnp.sum(a * v**2),
        w,
        tau,
        key=jax.random.key(0),
        magnitude_offset=offset,
    )
    assert bool(result.bracketed) and result.method == "lower_bound"
    # The largest passing point of a 30-step bisection on [0, 1]: below the exact
    # crossing by at most the bracket 2^-30 (the vertex is reached exactly).
    assert float(exact) - 2.0**-30 <= float(result.value) <= float(exact) * (1 + 1e-12)
    assert float(result.upper) >= float(exact) * (1 - 1e-12)


# ------------------------------------------------------------------ Fisher-Rao


def test_fisher_rao_norm_of_a_linear_model():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((10, 3)), rng.standard_normal(10)
    w = rng.standard_normal(3)
    examples = jnp.asarray(np.column_stack([x, y]))

    def loss(p, z):
        return 0.5 * (z[:3] @ p - z[3]) ** 2

    residual = x @ w - y
    expected = np.mean((residual * (x @ w)) ** 2)
    np.testing.assert_allclose(
        fisher_rao_norm(loss, jnp.asarray(w), examples), expected, rtol=1e-12
    )


def _relu_net(params, x):
    hidden = jax.nn.relu(params["w1"] @ x)
    hidden = jax.nn.relu(params["w2"] @ hidden)
    return params["w3"] @ hidden


def test_fisher_rao_norm_of_a_bias_free_relu_net_has_the_homogeneous_form():
    # Three weight matrices (L = 2 hidden layers): <w, grad l> = 3 <dl/df, f>.
    rng = np.random.default_rng(8)
    params = {
        "w1": jnp.asarray(rng.standard_normal((4, 3))),
        "w2": jnp.asarray(rng.standard_normal((4, 4))),
        "w3": jnp.asarray(rng.standard_normal((2, 4))),
    }
    x = jnp.asarray(rng.standard_normal((12, 3)))
    labels = jnp.asarray(rng.integers(0, 2, 12))

    def loss(p, z):
        inputs, label = z
        logits = _relu_net(p, inputs)
        return -jax.nn.log_softmax(logits)[label]

    def homogeneous(z):
        inputs, label = z
        logits = _relu_net(params, inputs)
        dloss = jax.nn.softmax(logits) - jax.nn.one_hot(label, 2)
        return (3.0 * dloss @ logits) ** 2

    expected = jnp.mean(jax.vmap(homogeneous)((x, labels)))
    np.testing.assert_allclose(
        fisher_rao_norm(loss, params, (x, labels)), expected, rtol=1e-10
    )


# ----------------------------------------------------------- relative flatness


def test_relative_flatness_of_a_linear_layer_by_hand():
    # f(x) = W x with loss (1/2n) sum ||W x - y||^2: H_{s,s'} = delta_{ss'} X^T X / n,
    # so kappa = ||W||_F^2 tr(X^T X) / n.
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((15, 4)), rng.standard_normal((15, 3))
    weight = jnp.asarray(rng.standard_normal((3, 4)))

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((x @ p["w"].T - y) ** 2, axis=1))

    expected = jnp.sum(weight**2) * np.trace(x.T @ x) / 15
    exact = relative_flatness(loss, {"w": weight}, lambda p: p["w"])
    np.testing.assert_allclose(exact.value, expected, rtol=1e-12)
    chunked = relative_flatness(loss, {"w": weight}, lambda p: p["w"], probe_batch=5)
    np.testing.assert_allclose(chunked.value, expected, rtol=1e-12)
    for seed in range(3):
        sampled = relative_flatness(
            loss,
            {"w": weight},
            lambda p: p["w"],
            key=jax.random.key(seed),
            num_probes=64,
        )
        assert abs(sampled.value - expected) < 4 * sampled.stderr + 1e-10


def test_relative_flatness_refuses_a_vector_layer_and_a_missing_key():
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"relative_flatness\(where=.*\(3,\)"):
        relative_flatness(lambda p: jnp.sum(p["w"] ** 2), params, lambda p: p["w"])
    with pytest.raises(ValueError, match=r"relative_flatness\(key="):
        relative_flatness(
            lambda p: jnp.sum(p["w"] ** 2),
            {"w": jnp.ones((1, 3))},
            lambda p: p["w"],
            num_probes=4,
        )


# ------------------------------------------------------- Keskar's random subspace


def test_keskar_subspace_identity_recovers_the_full_space():
    a = jnp.array([1.0, 2.0, 0.5])
    w = jnp.array([1.0, -0.5, 2.0])

    def loss(v):
        return 0.5 * jnp.sum(a * v**2) + 0.1 * jnp.sum(v**3)

    key = jax.random.key(3)
    full = keskar_sharpness(loss, w, 0.05, key=key)
    identity = keskar_sharpness(loss, w, 0.05, key=key, subspace=jnp.eye(3))
    np.testing.assert_allclose(identity.value, full.value, rtol=1e-12)
    random = keskar_sharpness(loss, w, 0.05, key=key, subspace=2)
    assert random.perturbation.shape == (3,) and float(random.value) >= 0.0
    with pytest.raises(ValueError, match=r"keskar_sharpness\(subspace=.*\(2, 2\)"):
        keskar_sharpness(loss, w, 0.05, key=key, subspace=jnp.eye(2))
