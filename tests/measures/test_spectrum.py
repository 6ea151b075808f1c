"""Spectral density (SLQ) and extreme eigenvalues on prescribed spectra.

Tolerances: SLQ's moments are Monte Carlo estimates of tr(A^p)/d over the starts;
each start's quadrature is exact for p <= 2m - 1, so the error is the estimator's,
checked at 4 standard errors over several seeds. Gaussian broadening adds exactly
sigma^2 to the second moment; the grid integral is a trapezoid rule on a fine grid
(error far below 1e-6). Extreme eigenvalues: as in test_hessian.py (Kaniel-Paige).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import (
    hessian_eigenvalues,
    plot_spectral_density,
    spectral_density,
)


def _matrix(spectrum, seed):
    d = len(spectrum)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return jnp.asarray((q * np.asarray(spectrum)) @ q.T)


def _loss(matrix):
    return lambda w: 0.5 * w @ matrix @ w


SPECTRUM = np.concatenate([[10.0, 6.0], np.linspace(-1.0, 2.0, 58)])


@functools.partial(jax.jit, static_argnames=("num_starts", "num_iterations"))
def _density(matrix, key, num_starts, num_iterations):
    return spectral_density(
        _loss(matrix),
        jnp.zeros(matrix.shape[0]),
        key=key,
        num_starts=num_starts,
        num_iterations=num_iterations,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moments_match_traces_of_powers(seed):
    matrix = _matrix(SPECTRUM, seed)
    result = _density(matrix, jax.random.key(seed), num_starts=20, num_iterations=12)
    d = len(SPECTRUM)
    np.testing.assert_allclose(jnp.sum(result.weights, axis=1), 1.0, rtol=1e-12)
    for power in (1, 2, 3, 4):
        exact = np.sum(SPECTRUM**power) / d
        moment = result.moment(power)
        assert abs(moment.value - exact) <= 4 * moment.stderr, (power, moment, exact)
        assert moment.stderr > 0


def test_isolated_eigenvalues_are_ritz_values_of_every_start():
    matrix = _matrix(SPECTRUM, 5)
    result = _density(matrix, jax.random.key(0), num_starts=4, num_iterations=30)
    # Gap ratio (10 - 6)/(6 + 1) after 30 steps: the top Ritz value is exact to
    # far below 1e-8, in every start.
    np.testing.assert_allclose(result.nodes[:, -1], 10.0, rtol=1e-8)
    np.testing.assert_allclose(result.nodes[:, -2], 6.0, rtol=1e-6)


def test_broadened_density_integrates_to_one_with_the_right_moments():
    matrix = _matrix(SPECTRUM, 6)
    result = _density(matrix, jax.random.key(1), num_starts=3, num_iterations=20)
    sigma = 0.3
    grid = jnp.linspace(-6.0, 16.0, 20001)
    values = result.density(grid, sigma)
    mass = jnp.trapezoid(values, grid)
    mean = jnp.trapezoid(grid * values, grid)
    second = jnp.trapezoid(grid**2 * values, grid)
    np.testing.assert_allclose(mass, 1.0, rtol=1e-6)
    np.testing.assert_allclose(mean, result.moment(1).value, rtol=1e-6)
    np.testing.assert_allclose(second, result.moment(2).value + sigma**2, rtol=1e-6)


def test_plot_returns_a_figure_on_a_log_axis():
    matrix = _matrix(SPECTRUM, 7)
    result = _density(matrix, jax.random.key(2), num_starts=2, num_iterations=10)
    figure = plot_spectral_density(result)
    (ax,) = figure.axes
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "eigenvalue"
    (line,) = ax.get_lines()
    assert np.all(np.isfinite(line.get_ydata()))
    with pytest.raises(ValueError, match=r"plot_spectral_density\(sigma=.*> 0"):
        plot_spectral_density(result, sigma=-1.0)


def test_most_negative_eigenvalues_of_an_indefinite_matrix():
    spectrum = np.concatenate([[-3.0, -2.0], np.linspace(0.0, 4.0, 38)])
    matrix = _matrix(spectrum, 8)
    result = hessian_eigenvalues(
        _loss(matrix),
        jnp.zeros(40),
        2,
        key=jax.random.key(0),
        num_iterations=40,
        which="smallest",
    )
    np.testing.assert_allclose(result.values, [-3.0, -2.0], rtol=1e-10)
    assert bool(jnp.all(result.converged))
    # The Ritz vectors are eigenvectors for -3 and -2: residuals at roundoff.
    residual = result.vectors @ matrix - result.values[:, None] * result.vectors
    assert float(jnp.max(jnp.linalg.norm(residual, axis=1))) < 1e-8
    assert float(jnp.max(result.residuals)) < 1e-8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_starts": 0}, r"spectral_density\(num_starts=.*>= 1, got 0"),
        ({"num_iterations": 41}, r"spectral_density\(num_iterations=.*<= d = 40"),
        ({"start": "sobol"}, r"spectral_density\(start=.*'sobol'"),
        ({"key": None}, r"spectral_density\(key=.*None"),
    ],
)
def test_spectral_density_refuses_bad_arguments(kwargs, message):
    arguments = {"key": jax.random.key(0), **kwargs}
    with pytest.raises(ValueError, match=message):
        spectral_density(_loss(jnp.eye(40)), jnp.zeros(40), **arguments)


def test_unknown_which_is_refused():
    with pytest.raises(ValueError, match=r"hessian_eigenvalues\(which=.*'middle'"):
        hessian_eigenvalues(
            _loss(jnp.eye(4)), jnp.zeros(4), key=jax.random.key(0), which="middle"
        )
