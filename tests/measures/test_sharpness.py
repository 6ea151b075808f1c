"""SAER gap, flatness radius and Keskar sharpness against closed forms of the paper.

Helpers are module-level ``eqx.filter_jit`` functions of arrays (radii, problems,
points), so the parametrized cases of one shape share one compilation.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.measures import flatness_radius, keskar_sharpness, saer_gap
from flatjax.optim import (
    AbstractMaximizer,
    FunctionMaximizer,
    MaximizerMethod,
    QuadraticMaximizer,
)
from flatjax.problems import FlatERM, SAMSharp
from flatjax.problems._base import flat_half_square

#: Bisection with 40 steps on [0, 1] leaves a bracket of width 2**-40 ~ 9.1e-13.
BRACKET = 2.0**-40


def _along_last(w, radius):
    """$r e_d$: the exact maximizer at FlatERM's $e_I$ and $\\rho e_d$ (digest 4.1)."""
    return radius * jnp.zeros_like(w).at[-1].set(1.0)


class _SAMSharpMaximizer(AbstractMaximizer):
    """$v = +r$, so $F^r(w) = \\frac12\\max(0, w + r)^2$ (Theorem 6, digest 4.6)."""

    method: ClassVar[MaximizerMethod] = "closed_form"

    def __call__(self, w, radius):
        return jnp.full_like(w, radius)


@pytest.fixture(scope="module")
def training_set():
    """A FlatERM(n=4) training set with an unseen coordinate (any rho: S is 0/1)."""
    return FlatERM(n=4).sample_conditioned(jax.random.key(0))


# --------------------------------------------------------------------- SAER gap


def _quadratic_matrix():
    spectrum = np.array([3.0, 2.0, 0.5, -1.0])
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))
    return jnp.asarray((q * spectrum) @ q.T)


@eqx.filter_jit
def _quadratic_gaps(matrix, w, radius, key):
    def loss_fn(u):
        return 0.5 * u @ matrix @ u

    exact = saer_gap(loss_fn, w, radius, QuadraticMaximizer(matrix, jnp.zeros(4)))
    return exact, saer_gap(loss_fn, w, radius, key=key)


@pytest.mark.parametrize("radius", [0.1, 0.5, 2.0])
def test_saer_gap_of_quadratic_at_zero_is_half_lambda_max_r_squared(radius):
    exact, ascent = _quadratic_gaps(
        _quadratic_matrix(), jnp.zeros(4), jnp.asarray(radius), jax.random.key(1)
    )
    expected = 0.5 * 3.0 * radius**2
    # The trust-region solver is optimal to O(eps ||A|| r^2).
    assert exact.method == "exact"
    np.testing.assert_allclose(exact.value, expected, rtol=1e-10)
    assert float(exact.loss) == 0.0
    # The default maximizer is projected ascent: a lower bound, which on this
    # quadratic is the power method with ratio 2/3, converged after 100 steps.
    assert ascent.method == "lower_bound"
    assert float(ascent.value) <= expected * (1 + 1e-12)
    np.testing.assert_allclose(ascent.value, expected, rtol=1e-6)


@eqx.filter_jit
def _sharp_erm_gaps(problem, S, delta, key):
    def loss_fn(w):
        return problem.empirical_risk(w, S)

    w = problem.sharp_erm()
    exact = saer_gap(loss_fn, w, delta, FunctionMaximizer(_along_last))
    return exact, saer_gap(loss_fn, w, delta, key=key)


@pytest.mark.parametrize("rho", [0.0, 0.25, 0.5])
@pytest.mark.parametrize("delta", [0.1, 0.5])
def test_saer_gap_at_sharp_erm_is_half_delta_squared(training_set, rho, delta):
    # Theorem 1(ii), digest 4.1 item 4 and 7.2: F_S(rho e_d) = 0 and
    # F_S^delta(rho e_d) = delta^2 / 2, the largest gap a 1-smooth loss allows,
    # attained at v = delta e_d.
    problem = FlatERM(n=4, rho=rho)
    exact, ascent = _sharp_erm_gaps(
        problem, training_set, jnp.asarray(delta), jax.random.key(0)
    )
    assert float(exact.loss) == 0.0
    np.testing.assert_allclose(exact.value, 0.5 * delta**2, rtol=1e-12)
    # 1-smoothness caps every lower bound at delta^2 / 2 (up to rounding).
    assert float(ascent.value) <= 0.5 * delta**2 * (1 + 1e-12)
    assert float(ascent.value) >= 0.0


@eqx.filter_jit
def _sam_sharp_gaps(radius, key):
    problem = SAMSharp()

    def loss_fn(w):
        return problem.empirical_risk(w, problem.sample(key))

    w = problem.initial_point()
    closed = saer_gap(loss_fn, w, radius, _SAMSharpMaximizer())
    return closed, saer_gap(loss_fn, w, radius, key=key), problem.saer(w, radius)


@pytest.mark.parametrize("radius", [0.05, 0.25, 0.5])
def test_sam_sharp_gap_is_half_r_squared(radius):
    # Theorem 6, digest 7.4: F^r(0) - F(0) = r^2 / 2 with F(0) = 0.
    closed, ascent, closed_form_saer = _sam_sharp_gaps(
        jnp.asarray(radius), jax.random.key(0)
    )
    assert closed.method == "closed_form"
    np.testing.assert_allclose(closed.value, 0.5 * radius**2, rtol=1e-14)
    np.testing.assert_allclose(closed.saer, closed_form_saer, rtol=1e-14)
    # In 1-D a random start on the "sphere" {-r, r} that lands on +r is optimal;
    # with 8 starts the ascent finds it (and F'(0) = 0 rules out the SAM start).
    np.testing.assert_allclose(ascent.value, 0.5 * radius**2, rtol=1e-12)


# ------------------------------------------------------------ flatness radius


@eqx.filter_jit
def _flat_erm_radius(problem, S, directions, key):
    def loss_fn(w):
        return problem.empirical_risk(w, S)

    w = problem.flat_erm(S)
    exact = flatness_radius(loss_fn, w, FunctionMaximizer(_along_last))
    ascent = flatness_radius(loss_fn, w, key=key)
    radii = jnp.array([0.1, 0.4, 0.8])
    # F_S(e_I + v) on the spheres of these radii, and at the claimed maximizer.
    on_spheres = jax.vmap(lambda r: jax.vmap(loss_fn)(w[None, :] + r * directions))(
        radii
    )
    at_maximizer = jax.vmap(lambda r: loss_fn(w + _along_last(w, r)))(radii)
    return exact, ascent, radii, on_spheres, at_maximizer


@pytest.mark.parametrize("rho", [0.0, 0.1, 0.25, 0.5])
def test_flatness_radius_of_flat_erm_is_rho(training_set, rho):
    # Theorem 1(i), digest 7.2: e_I is a rho-flat minimum of F_S, and no larger
    # radius is flat since r e_d gives (1/2)(r - rho)^2 > 0 for r > rho.
    problem = FlatERM(n=4, rho=rho)
    directions = np.random.default_rng(1).standard_normal((512, problem.d))
    directions = jnp.asarray(directions / np.linalg.norm(directions, axis=1)[:, None])
    exact, ascent, radii, on_spheres, at_maximizer = _flat_erm_radius(
        problem, training_set, directions, jax.random.key(0)
    )
    # Digest 4.1 mechanism item 2: at e_I, F_S(e_I + v) <= (1/2)[r - rho]_+^2 for
    # every |v| <= r, attained at r e_d. Checked on 512 random points of each
    # sphere, so the closed-form maximizer really is exact.
    bound = 0.5 * jnp.square(jnp.maximum(radii - rho, 0.0))
    np.testing.assert_array_less(jnp.max(on_spheres, axis=1), bound + 1e-15)
    np.testing.assert_allclose(at_maximizer, bound, rtol=1e-12, atol=1e-300)
    assert exact.method == "exact"
    assert bool(exact.bracketed)
    # The bisection bracket [value, upper] has width 2**-40 and contains rho, up
    # to one rounding of sqrt(r^2) in the loss.
    assert float(exact.value) <= rho + 1e-15
    assert float(exact.upper) >= rho - 1e-15
    assert float(exact.upper - exact.value) <= BRACKET * (1 + 1e-9)
    # With a lower-bound maximizer the radius found is an upper bound on rho: it
    # can only miss perturbations that make the loss positive.
    assert ascent.method == "lower_bound"
    assert float(ascent.value) >= rho - 1e-15
    # It is still informative: measured 1.098 rho (the ascent's random starts in the
    # flat region see no gradient until some |v * z_k| exceeds rho).
    assert float(ascent.value) <= 1.5 * rho + BRACKET


@eqx.filter_jit
def _radial_radius(w, rho, key):
    def loss_fn(u):
        return flat_half_square(jnp.sum(jnp.square(u)), rho)

    return flatness_radius(loss_fn, w, key=key)


@pytest.mark.parametrize("rho", [0.05, 0.3, 0.9])
def test_flatness_radius_of_radial_loss_is_rho(rho):
    # (1/2)[|w| - rho]_+^2 at w = 0: every direction of the sphere is a maximizer,
    # so even the numerical ascent is exact, and the radius is rho.
    result = _radial_radius(jnp.zeros(3), jnp.asarray(rho), jax.random.key(0))
    assert bool(result.bracketed)
    np.testing.assert_allclose(result.value, rho, atol=BRACKET + 1e-15)


def test_flatness_radius_saturates_at_max_radius():
    def loss_fn(w):
        return flat_half_square(jnp.sum(jnp.square(w)), 2.0)

    result = flatness_radius(
        loss_fn, jnp.zeros(2), FunctionMaximizer(_along_last), max_radius=1.5
    )
    assert not bool(result.bracketed)
    assert float(result.value) == 1.5
    assert float(result.upper) == float("inf")


# ----------------------------------------------------------- Keskar sharpness


@eqx.filter_jit
def _keskar(curvatures, centre, w, epsilon, key):
    def loss_fn(u):
        return 0.5 * jnp.sum(curvatures * jnp.square(u - centre))

    return keskar_sharpness(loss_fn, w, epsilon, key=key)


@pytest.mark.parametrize("epsilon", [1e-3, 0.1, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_keskar_box_maximum_is_the_far_vertex(epsilon, seed):
    # A separable convex quadratic: each coordinate is maximized independently at
    # the end of its interval farther from the centre, v_i = sign(w_i - c_i) b_i with
    # b_i = eps (|w_i| + 1) (Keskar et al. 2017, Metric 2.1).
    rng = np.random.default_rng(seed)
    curvatures = jnp.asarray(rng.uniform(0.1, 3.0, 6))
    centre, w = jnp.asarray(rng.standard_normal((2, 6)))
    result = _keskar(curvatures, centre, w, jnp.asarray(epsilon), jax.random.key(9))
    half_width = epsilon * (jnp.abs(w) + 1.0)
    vertex = jnp.sign(w - centre) * half_width
    maximum = 0.5 * jnp.sum(curvatures * jnp.square(jnp.abs(w - centre) + half_width))
    loss = 0.5 * jnp.sum(curvatures * jnp.square(w - centre))
    assert result.method == "lower_bound"
    # Sign ascent from v = 0 reaches the vertex after ~11 steps and the clip holds
    # it there exactly: agreement to rounding.
    np.testing.assert_allclose(result.perturbation, vertex, rtol=1e-14)
    np.testing.assert_allclose(result.maximum, maximum, rtol=1e-13)
    np.testing.assert_allclose(
        result.value, 100 * (maximum - loss) / (1 + loss), rtol=1e-11
    )


# ------------------------------------------------------------------------- vmap


def _assert_vmap_equals_loop(measure, *batched_args):
    """``eqx.filter_vmap`` over the leading axis of every argument, and a loop."""
    batched = eqx.filter_vmap(measure)(*batched_args)
    looped = [measure(*args) for args in zip(*batched_args, strict=True)]
    arrays, _ = eqx.partition(batched, eqx.is_array)
    for i, single in enumerate(looped):
        single_arrays, _ = eqx.partition(single, eqx.is_array)
        # The same arithmetic, batched: equal up to reassociation in float64.
        jax.tree_util.tree_map(
            lambda a, b, i=i: np.testing.assert_allclose(
                a[i], b, rtol=1e-9, atol=1e-12
            ),
            arrays,
            single_arrays,
        )


def _points_and_keys(d, seed=3):
    points = jnp.asarray(np.random.default_rng(seed).standard_normal((32, d)))
    return points, jax.random.split(jax.random.key(seed), 32)


def test_saer_gaps_vmap_over_points_and_keys_equals_a_loop():
    points, keys = _points_and_keys(4)
    matrix = _quadratic_matrix()

    def measure(w, key):
        return _quadratic_gaps(matrix, w, jnp.asarray(0.5), key)

    _assert_vmap_equals_loop(measure, points, keys)


def test_keskar_vmap_over_points_and_keys_equals_a_loop():
    points, keys = _points_and_keys(6)
    curvatures, centre = jnp.linspace(0.1, 3.0, 6), jnp.zeros(6)

    def measure(w, key):
        return _keskar(curvatures, centre, w, jnp.asarray(0.1), key)

    _assert_vmap_equals_loop(measure, points, keys)


def test_flatness_radius_vmap_over_points_and_keys_equals_a_loop():
    points, keys = _points_and_keys(3)
    points = 0.2 * points / jnp.linalg.norm(points, axis=1, keepdims=True)
    rho = jnp.full((32,), 0.5)
    _assert_vmap_equals_loop(_radial_radius, points, rho, keys)
