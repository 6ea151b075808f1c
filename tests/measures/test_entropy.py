"""Local entropy of a quadratic: a Gaussian integral, checked within standard errors.

For $L(w') = \\frac12 w'^\\top A w'$ the Gibbs measure
$\\propto e^{-L(w') - \\frac\\gamma2\\|w-w'\\|^2}$ is Gaussian with precision
$P = A + \\gamma I$ and mean $\\gamma P^{-1} w$, and
$-F = \\frac12\\log\\det P - \\frac d2\\log 2\\pi - \\frac{\\gamma^2}2 w^\\top P^{-1}w
+ \\frac\\gamma2\\|w\\|^2$. The estimator also has two deterministic errors, both
computed here in closed form: the unadjusted Langevin bias (for a Gaussian target of
precision $p$ the chain's stationary variance is $1/(p(1-hp/2))$, its mean exact)
and the Gauss-Legendre quadrature error over $\\lambda$.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import local_entropy

GAMMA = 1.0
STEP_SIZE = 0.01
NUM_NODES = 6
SPECTRUM = np.array([0.5, 1.0, 2.0])


@functools.partial(jax.jit, static_argnames=("num_chains", "num_steps", "num_burnin"))
def _local_entropy(matrix, w, key, num_chains=32, num_steps=3000, num_burnin=1000):
    return local_entropy(
        lambda u: 0.5 * u @ matrix @ u,
        w,
        GAMMA,
        key=key,
        num_chains=num_chains,
        num_steps=num_steps,
        num_burnin=num_burnin,
        step_size=STEP_SIZE,
        num_nodes=NUM_NODES,
    )


def _mean_loss(matrix, w, coupling, step_size):
    """E[L] under the stationary law of ULA on lambda L + (gamma/2)|w' - w|^2."""
    precision = coupling * matrix + GAMMA * np.eye(3)
    eigenvalues, vectors = np.linalg.eigh(precision)
    variances = 1.0 / (eigenvalues * (1.0 - step_size * eigenvalues / 2.0))
    covariance = (vectors * variances) @ vectors.T
    mean = GAMMA * np.linalg.solve(precision, w)
    return 0.5 * np.trace(matrix @ covariance) + 0.5 * mean @ matrix @ mean


def _predicted(matrix, w, step_size):
    """The estimator's mean: quadrature of the ULA expectations, constant included."""
    nodes, weights = np.polynomial.legendre.leggauss(NUM_NODES)
    integral = sum(
        0.5 * weight * _mean_loss(matrix, w, 0.5 * (node + 1.0), step_size)
        for node, weight in zip(nodes, weights, strict=True)
    )
    return float(integral) - 1.5 * np.log(2 * np.pi / GAMMA)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_local_entropy_of_quadratic(seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    matrix = (q * SPECTRUM) @ q.T
    w = rng.standard_normal(3)
    result = _local_entropy(jnp.asarray(matrix), jnp.asarray(w), jax.random.key(seed))

    precision = matrix + GAMMA * np.eye(3)
    gibbs_mean = GAMMA * np.linalg.solve(precision, w)
    exact = (
        0.5 * np.linalg.slogdet(precision)[1]
        - 1.5 * np.log(2 * np.pi)
        - 0.5 * GAMMA**2 * w @ np.linalg.solve(precision, w)
        + 0.5 * GAMMA * w @ w
    )
    predicted = _predicted(matrix, w, STEP_SIZE)
    # Sanity of the closed forms: the quadrature of the exact expectations
    # (step 0) reproduces the Gaussian integral to 1e-6 (6 nodes, integrand
    # analytic in lambda with poles at -gamma / a_i <= -0.5).
    np.testing.assert_allclose(_predicted(matrix, w, 0.0), exact, atol=1e-6)
    bias = abs(predicted - exact)
    assert bias < 0.02  # ULA bias of order h p / 2 <= 1.5% of the variance term
    # Monte Carlo: the estimate is a mean over 32 independent chains per node
    # (the standard error accounts for autocorrelation); 4 standard errors around
    # the estimator's own mean, and 4 SE plus the computed bias around -F.
    assert abs(float(result.value) - predicted) < 4 * float(result.stderr)
    assert abs(float(result.value) - exact) < 4 * float(result.stderr) + bias
    # The gradient gamma (w - E[w']) is unbiased for ULA on a Gaussian (its
    # stationary mean is exact): each coordinate within 4 standard errors.
    np.testing.assert_array_less(
        np.abs(result.mean - gibbs_mean), 4 * result.gradient_stderr / GAMMA
    )
    np.testing.assert_allclose(
        result.gradient, GAMMA * (w - result.mean), rtol=1e-12, atol=1e-15
    )
    assert float(result.stderr) < 0.05  # the check is not vacuous


def test_flatter_quadratic_has_lower_negative_local_entropy():
    # -F grows with the curvature (1/2 log det(A + gamma I)): scaling A by 16
    # raises it by 2.08 here. Each estimate within 4 SE of its computed mean.
    values = []
    for matrix in (np.diag(SPECTRUM * 4), np.diag(SPECTRUM / 4)):
        result = _local_entropy(jnp.asarray(matrix), jnp.zeros(3), jax.random.key(0))
        predicted = _predicted(matrix, np.zeros(3), STEP_SIZE)
        assert abs(float(result.value) - predicted) < 4 * float(result.stderr)
        values.append(float(result.value))
    sharp, flat = values
    assert sharp - flat > 1.0


def test_vmap_over_points_and_keys_equals_a_loop():
    matrix = jnp.asarray(np.diag(SPECTRUM))
    points = jnp.asarray(np.random.default_rng(5).standard_normal((32, 3)))
    keys = jax.random.split(jax.random.key(5), 32)
    measure = functools.partial(
        _local_entropy, num_chains=4, num_steps=200, num_burnin=100
    )
    batched = jax.vmap(measure, in_axes=(None, 0, 0))(matrix, points, keys)
    for i, (w, key) in enumerate(zip(points, keys, strict=True)):
        # The same arithmetic, batched: equal up to reassociation in float64.
        jax.tree_util.tree_map(
            lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-9),
            batched,
            measure(matrix, w, key),
        )
