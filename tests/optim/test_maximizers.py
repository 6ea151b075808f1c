"""Inner maximizers: the exact trust-region solver and the multi-start ascent.

Strongest checks first: the KKT conditions, which certify a global maximum of the
trust-region subproblem; then brute force over a fine grid of the disk (2-D) and a
dense random search (4-6-D); then the generic ascent against the exact solver.
"""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatjax
import flatjax.optim as optim
from flatjax.optim import (
    AscentMaximizer,
    QuadraticMaximizer,
    maximize_quadratic_on_ball,
    saer,
)

# Observed KKT residuals and value gaps are at most ~2e-15 relative in float64
# (a few ulps); 1e-12 leaves three orders of magnitude for other BLAS/LAPACK builds,
# while a wrong branch (hard case missed, interior taken for boundary) is off by O(1).
ROUNDING = 1e-12


def quadratic_value(hessian, linear, v):
    """q(v) = v^T A v / 2 + b^T v, for one v or a batch (last axis)."""
    return 0.5 * np.sum((v @ hessian) * v, axis=-1) + v @ linear


def scale_of(hessian, linear, radius):
    """The size of q and of its gradient on the ball: ||A|| r + ||b||."""
    return np.linalg.norm(hessian, 2) * radius + np.linalg.norm(linear)


def kkt_residuals(hessian, linear, radius, v):
    r"""Relative violations of the global optimality conditions of the subproblem.

    $v$ is a global maximizer iff some $\mu \ge 0$ has $(\mu I - A)v = b$,
    $\mu \ge \lambda_{\max}(A)$ and $\mu(r - \|v\|) = 0$ (Moré & Sorensen 1983,
    Lemma 2.1, as a maximization). $\mu$ is recovered from $v$ by least squares.
    """
    gradient = hessian @ v + linear
    norm = np.linalg.norm(v)
    mu = (v @ gradient) / norm**2 if norm > 0 else 0.0
    scale = scale_of(hessian, linear, radius)
    top = np.linalg.eigvalsh(hessian)[-1]
    return {
        "stationarity": np.linalg.norm(gradient - mu * v) / scale,
        "dual": max(top - mu, -mu, 0.0) * radius / scale,
        "complementarity": abs(mu) * abs(radius - norm) / scale,
        "feasibility": max(norm - radius, 0.0) / radius,
        "mu": mu,
        "top": top,
    }


def random_instance(kind, n, rng):
    """(hessian, linear, radius) of a named kind, with a random eigenbasis."""
    basis = np.linalg.qr(rng.normal(size=(n, n)))[0]
    eigenvalues = np.sort(rng.uniform(-2.0, 2.0, size=n))
    eigenvalues[-1] = abs(eigenvalues[-1]) + 0.5
    linear_eigen = rng.normal(size=n)
    radius = rng.uniform(0.2, 3.0)
    if kind == "positive_definite":
        eigenvalues = rng.uniform(0.5, 2.0, size=n)
    elif kind in ("interior", "concave_boundary"):
        eigenvalues = -rng.uniform(0.5, 2.0, size=n)
        unconstrained = np.linalg.norm(linear_eigen / eigenvalues)
        radius = unconstrained * (2.0 if kind == "interior" else 0.5)
    elif kind in ("hard", "near_hard", "hard_double"):
        if kind == "hard_double":
            eigenvalues[-2] = eigenvalues[-1]
        top = eigenvalues == eigenvalues[-1]
        linear_eigen[top] = 1e-9 * linear_eigen[top] if kind == "near_hard" else 0.0
        # The hard case needs ||(lambda_max I - A)^+ b|| < r.
        rest = linear_eigen[~top] / (eigenvalues[-1] - eigenvalues[~top])
        radius = 2.0 * np.linalg.norm(rest) + 0.1
    elif kind == "clustered":
        eigenvalues[-2] = eigenvalues[-1]
    elif kind == "zero_linear":
        linear_eigen = np.zeros(n)
    hessian = basis @ np.diag(eigenvalues) @ basis.T
    return 0.5 * (hessian + hessian.T), basis @ linear_eigen, radius


KINDS = [
    "positive_definite",
    "indefinite",
    "interior",
    "concave_boundary",
    "hard",
    "hard_double",
    "near_hard",
    "clustered",
    "zero_linear",
]
solve_batch = jax.jit(jax.vmap(maximize_quadratic_on_ball))


@pytest.mark.parametrize("n", [4, 7])
@pytest.mark.parametrize("kind", KINDS)
def test_solver_satisfies_global_optimality_conditions(kind, n):
    rng = np.random.default_rng([KINDS.index(kind), n])
    instances = [random_instance(kind, n, rng) for _ in range(16)]
    hessians, linears, radii = (np.stack(x) for x in zip(*instances, strict=True))
    solutions = np.asarray(solve_batch(hessians, linears, radii))
    for hessian, linear, radius, v in zip(
        hessians, linears, radii, solutions, strict=True
    ):
        residuals = kkt_residuals(hessian, linear, radius, v)
        for name in ("stationarity", "dual", "complementarity", "feasibility"):
            assert residuals[name] <= ROUNDING, (name, residuals)
        norm = np.linalg.norm(v)
        # The instances are of the kind they claim to be.
        if kind == "interior":
            assert norm < 0.75 * radius and abs(residuals["mu"]) <= ROUNDING
        else:
            assert norm == pytest.approx(radius, rel=ROUNDING)
        if kind in ("hard", "hard_double"):
            # mu = lambda_max, yet v reaches the sphere: the hard case occurred. (mu
            # is recovered to ~1e-15; the near-hard kind has mu - lambda_max ~ 1e-9.)
            assert residuals["mu"] == pytest.approx(residuals["top"], abs=1e-11)


def polar_grid_maximum(hessian, linear, radius, num_radii=801, num_angles=4096):
    """Brute-force max of q over a polar grid of the disk, and its error bound."""
    rho = np.linspace(0.0, radius, num_radii)[:, None, None]
    theta = np.linspace(0.0, 2 * np.pi, num_angles, endpoint=False)
    directions = np.stack([np.cos(theta), np.sin(theta)], axis=-1)[None]
    best = quadratic_value(hessian, linear, rho * directions).max()
    # A boundary maximizer is a maximum of q(r u(theta)), whose second derivative is
    # at most 2 r^2 ||A|| + r ||b||; the nearest grid angle is h/2 away. An interior
    # maximizer (gradient 0) loses at most ||A|| e^2 / 2 at distance e from it.
    h = 2 * np.pi / num_angles
    norm = np.linalg.norm(hessian, 2)
    boundary = 0.5 * (2 * radius**2 * norm + radius * np.linalg.norm(linear))
    boundary *= (h / 2) ** 2
    distance = radius / (num_radii - 1) / 2 + radius * h / 2
    return best, boundary + 0.5 * norm * distance**2


CASES_2D = {
    # Hard case: b is orthogonal to the top eigenvector e_1 and
    # ||(2 I - A)^+ b|| = 0.1 < r, so v = (sqrt(r^2 - 0.01), 0.1), q = 1.005.
    "hard": (np.diag([2.0, 1.0]), np.array([0.0, 0.1]), 1.0, 1.005),
    # Indefinite, generic b.
    "indefinite": (np.array([[1.0, 2.0], [2.0, -1.0]]), np.array([0.3, -0.2]), 0.7),
    # Negative definite, interior maximizer -A^{-1} b = (0.25, 0.2), q = 0.0825.
    "interior": (-np.diag([2.0, 1.0]), np.array([0.5, 0.2]), 1.0, 0.0825),
    # Negative definite, unconstrained maximizer outside: boundary.
    "concave_boundary": (-np.diag([2.0, 1.0]), np.array([0.5, 0.2]), 0.1),
    # b = 0: v = r e_top for indefinite A (q = lambda_max r^2 / 2 = 0.72), ...
    "zero_linear": (np.diag([-1.0, 1.6]), np.zeros(2), 0.3, 0.072),
    # ... and v = 0 for negative definite A.
    "zero_linear_concave": (-np.diag([1.0, 1.6]), np.zeros(2), 0.3, 0.0),
    "positive_definite": (np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([1.0, -1.0]), 2),
}


@pytest.mark.parametrize("name", list(CASES_2D))
def test_solver_matches_polar_grid_in_2d(name):
    hessian, linear, radius, *closed_form = CASES_2D[name]
    v = np.asarray(maximize_quadratic_on_ball(hessian, linear, radius))
    value = quadratic_value(hessian, linear, v)
    if closed_form:
        assert value == pytest.approx(closed_form[0], abs=ROUNDING)
    best, grid_error = polar_grid_maximum(hessian, linear, radius)
    scale = scale_of(hessian, linear, radius) * radius
    # No grid point beats the solver; the solver beats the grid by at most the
    # grid's discretization error.
    assert best <= value + ROUNDING * scale
    assert value - best <= grid_error + ROUNDING * scale
    assert np.linalg.norm(v) <= radius + 1e-12


def test_hard_case_in_2d_really_occurs():
    hessian, linear, radius, _ = CASES_2D["hard"]
    v = np.asarray(maximize_quadratic_on_ball(hessian, linear, radius))
    # b has no component along the top eigenvector e_1, and at mu = lambda_max the
    # secular vector (mu I - A)^+ b = (0, 0.1) is strictly inside the ball ...
    assert linear[0] == 0.0
    assert np.linalg.norm(np.array([0.0, linear[1] / (2.0 - 1.0)])) < radius
    # ... so the maximizer adds a multiple of e_1 to reach the sphere, mu = 2.
    np.testing.assert_allclose(np.abs(v), [math.sqrt(0.99), 0.1], rtol=ROUNDING)
    assert kkt_residuals(hessian, linear, radius, v)["mu"] == pytest.approx(2.0)


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize("kind", ["indefinite", "hard", "positive_definite"])
def test_random_search_never_beats_solver(kind, n):
    rng = np.random.default_rng([n, len(kind)])
    hessian, linear, radius = random_instance(kind, n, rng)
    v = np.asarray(maximize_quadratic_on_ball(hessian, linear, radius))
    value = quadratic_value(hessian, linear, v)
    directions = rng.normal(size=(200_000, n))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    # Half on the sphere, half uniform in the ball (radius r U^(1/n)).
    lengths = radius * np.concatenate(
        [np.ones(100_000), rng.uniform(size=100_000) ** (1 / n)]
    )
    searched = quadratic_value(hessian, linear, directions * lengths[:, None]).max()
    assert searched <= value + ROUNDING * scale_of(hessian, linear, radius) * radius
    assert np.linalg.norm(v) <= radius + 1e-12


@pytest.mark.parametrize("top_coefficient", [1e-4, 1e-8, 1e-16, 1e-100, 1e-300, 0.0])
def test_near_hard_case_is_continuous(top_coefficient):
    # As b's top component goes to 0 the maximizer tends to the hard-case one,
    # (+-sqrt(r^2 - 0.01), 0.1); the secular root sits next to the pole.
    hessian, radius = np.diag([2.0, 1.0]), 1.0
    linear = np.array([top_coefficient, 0.1])
    v = np.asarray(maximize_quadratic_on_ball(hessian, linear, radius))
    for name, value in kkt_residuals(hessian, linear, radius, v).items():
        if name not in ("mu", "top"):
            assert value <= ROUNDING, name
    # |v_1 - 0.1| = 0.1 (1 - 1/(1 + s)) ~ 0.1 s with the shift s ~ top_coefficient.
    np.testing.assert_allclose(
        np.abs(v), [math.sqrt(0.99), 0.1], atol=max(top_coefficient, ROUNDING)
    )


@pytest.mark.parametrize(
    ("top_coefficient", "fill", "radius"),
    [
        (1e-6, 1.0, 1.0),
        (1e-12, 1.0, 1.0),
        (1e-30, 1.0, 1.0),
        (1e-300, 1.0, 1.0),
        # The rest overfills the ball a little: the root s ~ 6e-11 is 1e19 times
        # the lower bound beta / r, where Newton alone would creep ~1.5x a step.
        (1e-30, 1 + 1e-10, 1.0),
        # The root s ~ 7e-303: a Newton step of ~1e-8 s is below the smallest
        # normal number and would be flushed to 0 unless taken relative to s.
        (1e-300, 0.99, 1000.0),
    ],
)
def test_secular_root_next_to_a_pole(top_coefficient, fill, radius):
    # A = diag(1, 0, -1/2), b = (beta, 0.6 f r, 1.2 f r): at mu = lambda_max = 1 the
    # other components give f r (0.6, 0.8), of norm f r. With f = 1 the root
    # mu - 1 ~ beta^(2/3) is tiny, and Newton from the lower bound beta / r only
    # grows the shift ~1.5x a step; the geometric bisection must carry it there
    # within the fixed iteration count.
    hessian = np.diag([1.0, 0.0, -0.5])
    linear = np.array([top_coefficient, 0.6 * fill * radius, 1.2 * fill * radius])
    v = np.asarray(maximize_quadratic_on_ball(hessian, linear, radius))
    for name, value in kkt_residuals(hessian, linear, radius, v).items():
        if name not in ("mu", "top"):
            assert value <= ROUNDING, name
    # With f = 1, ||y(s)||^2 = beta^2 / s^2 + 1 - 1.57 s + O(s^2), so
    # s^3 ~ beta^2 / 1.57 and the other components move by O(s) < beta^(1/3);
    # with f != 1 they move by O(|f - 1|).
    np.testing.assert_allclose(
        v[1:] / (radius * min(fill, 1.0)),
        [0.6, 0.8],
        atol=top_coefficient ** (1 / 3) + 2 * abs(fill - 1),
    )


def test_solver_jit_and_vmap_equal_a_loop():
    rng = np.random.default_rng(7)
    instances = [random_instance(KINDS[i % len(KINDS)], 4, rng) for i in range(16)]
    hessians, linears, radii = (np.stack(x) for x in zip(*instances, strict=True))
    radii[3] = 0.0
    radii[4] = -1.0
    # A traced negative radius is refused at run time while runtime checks are on
    # (the default); with them off it returns 0 (documented). The setting is read
    # at trace time, so the unchecked program is a fresh jit.
    with pytest.raises(Exception, match=r"maximize_quadratic_on_ball\(radius=...\)"):
        solve_batch(hessians, linears, radii)
    with flatjax.runtime_checks(False):
        unchecked = jax.jit(jax.vmap(maximize_quadratic_on_ball))
        batched = np.asarray(unchecked(hessians, linears, radii))
    looped = np.stack(
        [
            np.asarray(maximize_quadratic_on_ball(hessian, linear, max(radius, 0.0)))
            for hessian, linear, radius in zip(hessians, linears, radii, strict=True)
        ]
    )
    # The batched eigh may order its floating-point operations differently.
    np.testing.assert_allclose(batched, looped, rtol=0, atol=ROUNDING)
    assert np.all(batched[3] == 0.0) and np.all(batched[4] == 0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_solver_keeps_dtype_and_ball(dtype):
    hessian, linear, radius, _ = CASES_2D["hard"]
    v = maximize_quadratic_on_ball(
        jnp.asarray(hessian, dtype), jnp.asarray(linear, dtype), radius
    )
    assert v.dtype == dtype
    assert float(jnp.linalg.norm(v)) <= radius
    # float32 rounding: a few ulps of 1.2e-7 on a value of order 1.
    tolerance = 1e-6 if dtype == jnp.float32 else ROUNDING
    np.testing.assert_allclose(np.abs(v), [math.sqrt(0.99), 0.1], atol=tolerance)


def test_radius_zero_returns_exactly_zero():
    hessian, linear, _, _ = CASES_2D["hard"]
    assert np.all(np.asarray(maximize_quadratic_on_ball(hessian, linear, 0.0)) == 0)
    maximizer = QuadraticMaximizer(hessian, linear)
    assert np.all(np.asarray(maximizer(jnp.ones(2), 0.0)) == 0)
    # (Traced radii 0 and -1: test_solver_jit_and_vmap_equal_a_loop; the ascent on
    # a pytree: test_ascent_on_a_pytree_returns_its_structure.)
    key = jax.random.key(0)
    v = ascent_on_quadratic(HESSIAN_4, GRADIENT_4, np.ones(4), 0.0, key)
    assert np.all(np.asarray(v) == 0)


# ----------------------------------------------------------------------------------
# QuadraticMaximizer.

HESSIAN_4 = np.diag([2.0, 1.0, -0.5, 0.3])
GRADIENT_4 = np.array([0.3, -0.2, 0.1, 0.0])


def quadratic_4(u):
    return 0.5 * u @ (jnp.asarray(HESSIAN_4) @ u) + jnp.asarray(GRADIENT_4) @ u


def test_quadratic_maximizer_solves_at_shifted_linear_term():
    maximizer = QuadraticMaximizer(HESSIAN_4, GRADIENT_4)
    w = jnp.array([0.5, -1.0, 0.2, 0.7])
    v = maximizer(w, 0.4)
    expected = maximize_quadratic_on_ball(HESSIAN_4, HESSIAN_4 @ w + GRADIENT_4, 0.4)
    assert np.array_equal(np.asarray(v), np.asarray(expected))
    result = saer(quadratic_4, w, 0.4, maximizer)
    assert result.method == "exact"
    # F(w + v) = F(w) + q(v) with b = A w + g.
    q = quadratic_value(
        HESSIAN_4, HESSIAN_4 @ np.asarray(w) + GRADIENT_4, np.asarray(v)
    )
    assert float(result.value) == pytest.approx(float(quadratic_4(w)) + q, abs=ROUNDING)


def test_quadratic_maximizer_jit_vmap_and_danskin_gradient():
    maximizer = QuadraticMaximizer(HESSIAN_4, GRADIENT_4)
    ws = jnp.asarray(np.random.default_rng(3).normal(size=(16, 4)))
    batched = jax.jit(jax.vmap(lambda w: maximizer(w, 0.5)))(ws)
    looped = jnp.stack([maximizer(w, 0.5) for w in ws])
    np.testing.assert_allclose(batched, looped, rtol=0, atol=ROUNDING)
    # The perturbation carries no gradient, so d SAER / dw = grad F(w + v*)
    # (Danskin's theorem), the SA-GD direction.
    w = ws[0]

    def saer_value(w):
        return saer(quadratic_4, w, 0.5, maximizer).value

    gradient = jax.grad(saer_value)(w)
    v = maximizer(w, 0.5)
    expected = HESSIAN_4 @ (w + v) + GRADIENT_4
    np.testing.assert_allclose(gradient, expected, rtol=0, atol=ROUNDING)


def test_quadratic_maximizer_returns_parameter_dtype():
    maximizer = QuadraticMaximizer(HESSIAN_4, GRADIENT_4)
    v = maximizer(jnp.ones(4, jnp.float32), 0.5)
    assert v.dtype == jnp.float32
    assert float(jnp.linalg.norm(v)) <= 0.5


# ----------------------------------------------------------------------------------
# AscentMaximizer.


# The ascent reaches the exact maximum of these smooth, well-conditioned instances to
# a few ulps (measured <= 2e-15 relative); 1e-12 leaves room for other platforms'
# rounding, while any real failure of the search (wrong basin, too few steps) shows
# as a gap of 1e-6 or more.
ASCENT_RTOL = 1e-12


@functools.partial(jax.jit, static_argnames="num_restarts")
def ascent_on_quadratic(hessian, gradient, w, radius, key, num_restarts=8):
    """``AscentMaximizer`` on F(u) = u^T A u / 2 + g^T u, compiled once per shape."""

    def loss(u):
        return 0.5 * u @ (hessian @ u) + gradient @ u

    return AscentMaximizer(loss, key, num_restarts=num_restarts)(w, radius)


def loss_value(hessian, gradient, u):
    return 0.5 * u @ hessian @ u + gradient @ u


@pytest.mark.parametrize("radius", [0.1, 0.5, 2.0])
def test_ascent_on_convex_quadratics_is_a_tight_lower_bound(radius):
    rng = np.random.default_rng(11)
    for seed in range(8):
        basis = np.linalg.qr(rng.normal(size=(4, 4)))[0]
        hessian = basis @ np.diag(rng.uniform(0.5, 2.0, size=4)) @ basis.T
        hessian = 0.5 * (hessian + hessian.T)
        gradient = rng.normal(size=4)
        w = rng.normal(size=4) if seed else np.zeros(4)
        exact_v = maximize_quadratic_on_ball(hessian, hessian @ w + gradient, radius)
        exact = loss_value(hessian, gradient, w + np.asarray(exact_v))
        key = jax.random.key(seed)
        v = np.asarray(ascent_on_quadratic(hessian, gradient, w, radius, key))
        found = loss_value(hessian, gradient, w + v)
        # A lower bound: feasible points only, so never above the exact maximum
        # beyond rounding of the loss evaluation.
        assert found <= exact + ROUNDING * max(1.0, abs(exact))
        # Tight: accepted large steps are conditional-gradient steps (the power
        # method here), which converge linearly; after 100 steps the measured
        # relative gaps are at most 5e-16 (2 ulps) at these radii. A search stuck at
        # a local maximum or stopped early is off by far more than ASCENT_RTOL.
        assert found == pytest.approx(exact, rel=ASCENT_RTOL)


def test_ascent_finds_an_interior_maximum_of_a_concave_loss():
    # F(u) = -||u - c||^2 / 2 + const, i.e. A = -I and g = c: with ||c - w|| < r the
    # maximizer v = c - w is interior, where the gradient vanishes and fixed
    # normalized steps would oscillate; step halving converges to it.
    center = np.array([0.3, -0.2, 0.1, 0.4])
    w = np.array([0.1, 0.0, 0.0, 0.1])
    v = ascent_on_quadratic(-np.eye(4), center, w, 1.0, jax.random.key(2))
    # Acceptance compares values, flat to second order at the maximum: v is found
    # to ~sqrt(eps) (measured 9e-10), the value to rounding.
    np.testing.assert_allclose(v, center - w, atol=1e-6)
    value = loss_value(-np.eye(4), center, w + np.asarray(v))
    assert value == pytest.approx(0.5 * center @ center, abs=ROUNDING)


def test_ascent_on_a_pytree_returns_its_structure():
    # F(a, b) = 2 ||a||^2 + <a, 1> / 2 + ||b||^2 / 2 + <b, (1, 0, -1)>: a quadratic
    # of the flat vector (a, b) with A = diag(4, 4, 1, 1, 1), solved exactly.
    linear_b = jnp.array([1.0, 0.0, -1.0])

    def loss(params):
        a, b = params["a"], params["b"]
        return 2 * jnp.sum(a**2) + 0.5 * jnp.sum(a) + 0.5 * jnp.sum(b**2) + b @ linear_b

    w = {"a": jnp.array([0.1, -0.3]), "b": jnp.array([0.2, 0.0, 0.4])}
    run = jax.jit(lambda w, radius: AscentMaximizer(loss, jax.random.key(4))(w, radius))
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(run(w, 0.0)))
    v = run(w, 0.6)
    assert jax.tree.structure(v) == jax.tree.structure(w)
    assert all(
        x.shape == y.shape
        for x, y in zip(jax.tree.leaves(v), jax.tree.leaves(w), strict=True)
    )
    hessian = np.diag([4.0, 4.0, 1.0, 1.0, 1.0])
    gradient = np.concatenate([np.full(2, 0.5), np.asarray(linear_b)])
    flat_w = np.concatenate([w["a"], w["b"]])
    exact = loss(w) + quadratic_value(
        hessian,
        hessian @ flat_w + gradient,
        maximize_quadratic_on_ball(hessian, hessian @ flat_w + gradient, 0.6),
    )
    found = loss(jax.tree.map(jnp.add, w, v))
    assert float(found) <= float(exact) + ROUNDING
    assert float(found) == pytest.approx(float(exact), rel=ASCENT_RTOL)


def test_ascent_with_zero_gradient_start_uses_random_restarts():
    # At the minimizer w = -A^{-1} g of a convex quadratic the gradient is 0, so
    # the gradient start is undefined; the maximum F(w) + lambda_max r^2 / 2 is
    # found from random starts, or from the fallback direction with one start.
    hessian = np.diag([3.0, 1.0, 0.5, 0.2])
    gradient = np.array([0.3, 0.2, -0.1, 0.05])
    w = -gradient / np.diag(hessian)
    assert np.linalg.norm(hessian @ w + gradient) == 0.0
    for num_restarts in (1, 8):
        v = ascent_on_quadratic(
            hessian, gradient, w, 0.5, jax.random.key(5), num_restarts=num_restarts
        )
        assert np.all(np.isfinite(np.asarray(v)))
        found = loss_value(hessian, gradient, w + np.asarray(v))
        expected = loss_value(hessian, gradient, w) + 1.5 * 0.25
        assert found == pytest.approx(expected, rel=ASCENT_RTOL)


def test_ascent_never_accepts_non_finite_values():
    # The loss is NaN beyond u_0 = 0.3: the search stays where it is finite, below
    # the supremum 0.3 + 0.1 sqrt(1 - 0.3^2) of u_0 + 0.1 u_1 there, and near it.
    def loss(u):
        return jnp.where(u[0] < 0.3, u[0] + 0.1 * u[1], jnp.nan)

    maximizer = AscentMaximizer(loss, jax.random.key(6), num_steps=30)
    value = float(loss(eqx.filter_jit(maximizer)(jnp.zeros(2), 1.0)))
    assert 0.25 < value <= 0.3 + 0.1 * math.sqrt(1 - 0.3**2)


def test_ascent_vmap_over_keys_and_points_equals_a_loop():
    keys = jax.random.split(jax.random.key(8), 16)
    ws = np.random.default_rng(9).normal(size=(16, 4))
    batch = jax.jit(jax.vmap(ascent_on_quadratic, in_axes=(None, None, 0, None, 0)))
    batched = np.asarray(batch(HESSIAN_4, GRADIENT_4, ws, 0.5, keys))
    looped = np.stack(
        [
            ascent_on_quadratic(HESSIAN_4, GRADIENT_4, w, 0.5, key)
            for w, key in zip(ws, keys, strict=True)
        ]
    )

    # The values agree to rounding. The points agree to ~sqrt(eps) r only: steps are
    # accepted by comparing values of F, which is flat to second order at the
    # maximum, and batched and looped dot products round differently (measured
    # 5e-10 apart, values 7e-16 apart).
    def values(vs):
        return [
            loss_value(HESSIAN_4, GRADIENT_4, w + v)
            for w, v in zip(ws, vs, strict=True)
        ]

    np.testing.assert_allclose(values(batched), values(looped), atol=ROUNDING)
    np.testing.assert_allclose(batched, looped, rtol=0, atol=1e-7)
    assert np.all(np.linalg.norm(batched, axis=1) <= 0.5)


def test_saer_reports_the_maximizers_method():
    w = jnp.array([0.5, -1.0, 0.2, 0.7])
    exact = saer(quadratic_4, w, 0.3, QuadraticMaximizer(HESSIAN_4, GRADIENT_4))
    ascent = AscentMaximizer(quadratic_4, jax.random.key(1))

    # eqx.filter_jit passes the static string ``method`` through.
    @eqx.filter_jit
    def value_gradient_and_result(w):
        def value(w):
            result = saer(quadratic_4, w, 0.3, ascent)
            return result.value, result

        return jax.grad(value, has_aux=True)(w)

    gradient, lower = value_gradient_and_result(w)
    assert exact.method == "exact" and lower.method == "lower_bound"
    assert float(lower.value) <= float(exact.value) + ROUNDING
    # The exact SAER of this quadratic is attained by the ascent too (one basin).
    assert float(lower.value) == pytest.approx(float(exact.value), rel=ASCENT_RTOL)
    # Danskin through the ascent too: the gradient is grad F at w + v.
    np.testing.assert_allclose(
        gradient, jax.grad(quadratic_4)(w + lower.perturbation), atol=ROUNDING
    )


# ----------------------------------------------------------------------------------
# Bad input.

GOOD_HESSIAN = np.eye(2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"radius": -1.0},
            r"maximize_quadratic_on_ball\(radius=\.\.\.\)` must be >= 0, got -1\.0",
        ),
        ({"radius": float("inf")}, r"radius=.*finite"),
        ({"radius": float("nan")}, r"radius=.*finite"),
        ({"radius": np.ones(2)}, r"radius=.*scalar"),
        ({"hessian": np.ones((2, 3))}, r"hessian=.*square.*\(2, 3\)"),
        ({"hessian": np.ones(2)}, r"hessian=.*square"),
        ({"hessian": np.array([[1.0, 2.0], [0.0, 1.0]])}, r"hessian=.*symmetric"),
        ({"linear": np.ones(3)}, r"linear=.*\(2,\).*\(3,\)"),
    ],
)
def test_solver_rejects_bad_input(kwargs, match):
    arguments = {"hessian": GOOD_HESSIAN, "linear": np.ones(2), "radius": 1.0}
    with pytest.raises(ValueError, match=match):
        maximize_quadratic_on_ball(**(arguments | kwargs))


def test_rounding_level_asymmetry_is_accepted():
    # eigh averages A and A^T, so an asymmetry at rounding level is harmless.
    hessian = np.array([[1.0, 0.3], [0.3 + 1e-16, -1.0]])
    v = maximize_quadratic_on_ball(hessian, np.ones(2), 1.0)
    symmetric = maximize_quadratic_on_ball(0.5 * (hessian + hessian.T), np.ones(2), 1)
    np.testing.assert_allclose(v, symmetric, rtol=0, atol=ROUNDING)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: QuadraticMaximizer(np.ones((2, 3)), np.ones(2)),
            r"QuadraticMaximizer\(hessian=",
        ),
        (
            lambda: QuadraticMaximizer(np.array([[0.0, 1.0], [0.0, 0.0]]), np.ones(2)),
            "symmetric",
        ),
        (
            lambda: QuadraticMaximizer(GOOD_HESSIAN, np.ones(3)),
            r"QuadraticMaximizer\(gradient=",
        ),
        (
            lambda: QuadraticMaximizer(GOOD_HESSIAN, np.ones(2))(jnp.ones(3), 1.0),
            r"__call__\(w=",
        ),
        (
            lambda: QuadraticMaximizer(GOOD_HESSIAN, np.ones(2))(jnp.ones(2), -0.5),
            r"__call__\(radius=.*got -0\.5",
        ),
        (
            lambda: AscentMaximizer(jnp.sum, jax.random.key(0), num_restarts=0),
            r"AscentMaximizer\(num_restarts=.*got 0",
        ),
        (
            lambda: AscentMaximizer(jnp.sum, jax.random.key(0), num_steps=0),
            r"AscentMaximizer\(num_steps=.*got 0",
        ),
        (
            lambda: AscentMaximizer(jnp.sum, jax.random.key(0))(jnp.ones(2), -1.0),
            r"AscentMaximizer.__call__\(radius=",
        ),
        (
            lambda: AscentMaximizer(jnp.sum, jax.random.key(0))(jnp.ones(2), math.inf),
            r"radius=.*finite",
        ),
    ],
)
def test_maximizers_reject_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: AscentMaximizer(jnp.sum, jax.random.key(0), num_restarts=2.0),
            "num_restarts",
        ),
        (
            lambda: AscentMaximizer(jnp.sum, jax.random.key(0), num_steps="10"),
            "num_steps",
        ),
        (lambda: AscentMaximizer("loss", jax.random.key(0)), "loss_fn"),
    ],
)
def test_maximizers_reject_bad_types(make, match):
    with pytest.raises(TypeError, match=match):
        make()


@pytest.mark.parametrize(
    "name", ["AscentMaximizer", "QuadraticMaximizer", "maximize_quadratic_on_ball"]
)
def test_public_names_are_exported_and_documented(name):
    assert name in optim.__all__
    assert getattr(optim, name).__doc__
