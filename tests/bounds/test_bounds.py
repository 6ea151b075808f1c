"""Tests of flatjax.bounds against hand-computed values and the paper digest.

Expected numbers are computed independently here in plain Python floats (or written
out by hand), never by calling the library. Float64 is on (root conftest.py), so
formula-for-formula comparisons use rtol=1e-13: the two sides evaluate the same
real number by different operation orders, a few ulps apart.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flatjax.bounds as bounds
from flatjax.bounds import (
    lemma1_regret_bound,
    lemma4_population_risk_bound,
    lemma5_stability_bound,
    theorem1_flat_erm_excess_risk,
    theorem2_sagd_saer_bound,
    theorem3_hypotheses_hold,
    theorem3_sagd_lower_bound,
    theorem3_sagd_lower_bound_rate,
    theorem4_sagd_population_bound,
    theorem5_sam_empirical_risk_bound,
    theorem6_sam_saer_gap,
    theorem7_hypotheses_hold,
    theorem7_sam_lower_bound,
    theorem8_sam_population_bound,
)
from flatjax.problems import SAGDTrap

RTOL = 1e-13

# The corrected Theorem 3 constant (digest §4.3), recomputed here.
THEOREM3_CONSTANT = 0.25 * (1 / (2 * math.sqrt(2)) - 1 / 3) ** 2


# ----------------------------------------------------------------------------------
# Independent references.


def sagd_trap_suffix_risks(steps, learning_rate, radius, rho):
    """Exact F(ŵ_τ) for every τ on Theorem 3's trajectory (digest §4.3, items 4, 6).

    Iterate w_t has coordinates (I, 1..t-1) equal to -η(r-ρ) and all else 0, so the
    suffix average has ŵ_τ(I, s) = -η(r-ρ)(T - max(τ, s+1) + 1)_+ / (T - τ + 1), and
    F(ŵ) = ¼[‖ŵ^{(I)}‖ - ρ]_+² (only block I is non-zero, all of it non-positive).
    """
    step = learning_rate * max(radius - rho, 0.0)
    tau = np.arange(1, steps + 1)[:, None]
    position = np.arange(1, steps + 1)[None, :]
    count = np.maximum(steps - np.maximum(tau, position + 1) + 1, 0)
    averages = -step * count / (steps - tau + 1)
    norms = np.linalg.norm(averages, axis=1)
    return 0.25 * np.maximum(norms - rho, 0.0) ** 2, averages


def sam_sharp_saer(w, radius):
    """max over |v| <= r of ½max(0, w+v)², by brute force on a grid with endpoints."""
    v = np.linspace(-radius, radius, 2001)
    return float(np.max(0.5 * np.maximum(0.0, w + v) ** 2))


# ----------------------------------------------------------------------------------
# Public API.


def test_public_names_exist_sorted_and_documented():
    assert bounds.__all__ == sorted(bounds.__all__)
    assert len(bounds.__all__) == 14
    for name in bounds.__all__:
        fn = getattr(bounds, name)
        assert callable(fn), name
        doc = fn.__doc__ or ""
        assert "arXiv 2511.03548" in doc, name
        assert "Examples:" in doc and ">>>" in doc, name
        assert "Raises:" in doc, name


# ----------------------------------------------------------------------------------
# Hand-computed values.


@pytest.mark.parametrize(
    "rho, expected",
    [(0.0, 0.25), (0.1, 0.2025), (0.25, 0.140625), (0.5, 0.0625)],
)
def test_theorem1_hand_values(rho, expected):
    value = theorem1_flat_erm_excess_risk(rho=rho)
    assert float(value) == pytest.approx(expected, rel=RTOL)
    assert float(value) >= 1 / 16  # the Ω(1) floor of part (iii) for ρ <= ½


@pytest.mark.parametrize("rho, expected", [(0.75, 0.015625), (1.0, 0.0), (2.0, 0.0)])
def test_theorem1_outside_the_theorem(rho, expected):
    # The exact value ¼[1-ρ]_+² on the same construction; ρ=1 is the digest's control.
    value = theorem1_flat_erm_excess_risk(rho=rho, check_theorem=False)
    assert float(value) == pytest.approx(expected, rel=RTOL, abs=0.0)


def test_theorem1_matches_flat_erm_problem():
    from flatjax.problems import FlatERM

    for rho in (0.0, 0.3, 0.5):
        problem = FlatERM(n=4, rho=rho)
        S = problem.sample_conditioned(jax.random.key(0))
        risk = problem.population_risk(problem.flat_erm(S))
        assert bool(risk.exact)
        expected = theorem1_flat_erm_excess_risk(rho=rho)
        assert float(risk.value) == pytest.approx(float(expected), rel=RTOL)


OPTIMIZATION_BOUNDS = [
    lemma1_regret_bound,
    theorem2_sagd_saer_bound,
    theorem5_sam_empirical_risk_bound,
]


@pytest.mark.parametrize("fn", OPTIMIZATION_BOUNDS)
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # 1²/(0.25·64) + 4·1·0.5² = 0.0625 + 1
        (
            dict(
                learning_rate=0.25,
                radius=0.6,
                rho=0.1,
                beta=1.0,
                steps=64,
                initial_distance=1.0,
            ),
            1.0625,
        ),
        # r < ρ: only 2²/(0.1·10) = 4 remains
        (
            dict(
                learning_rate=0.1,
                radius=0.3,
                rho=0.5,
                beta=2.0,
                steps=10,
                initial_distance=2.0,
            ),
            4.0,
        ),
        # η = 1/(4β) exactly: 0.5²/(0.05·40) + 4·5·0.2² = 0.125 + 0.8
        (
            dict(
                learning_rate=0.05,
                radius=0.2,
                rho=0.0,
                beta=5.0,
                steps=40,
                initial_distance=0.5,
            ),
            0.925,
        ),
    ],
)
def test_optimization_bound_hand_values(fn, kwargs, expected):
    assert float(fn(**kwargs)) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # ¼(0.125/2·√32 - 0.1)² = ¼(1/(2√2) - 0.1)²
        (
            dict(learning_rate=0.25, radius=0.6, rho=0.1, steps=64),
            0.25 * (1 / (2 * math.sqrt(2)) - 0.1) ** 2,
        ),
        # ρ = 0: ¼(0.05/2)²·50 = 0.0078125
        (dict(learning_rate=1.0, radius=0.05, rho=0.0, steps=100), 0.0078125),
        # r < ρ: no drift, bound 0
        (dict(learning_rate=0.5, radius=0.2, rho=0.3, steps=16), 0.0),
        # drift 0.05/2·√4 = 0.05 below ρ = 0.3: bound 0
        (dict(learning_rate=0.5, radius=0.4, rho=0.3, steps=8), 0.0),
    ],
)
def test_theorem3_hand_values(kwargs, expected):
    value = theorem3_sagd_lower_bound(**kwargs)
    assert float(value) == pytest.approx(expected, rel=RTOL, abs=0.0)
    step = kwargs["learning_rate"] * max(kwargs["radius"] - kwargs["rho"], 0.0)
    rate = theorem3_sagd_lower_bound_rate(**kwargs)
    expected_rate = THEOREM3_CONSTANT * step**2 * kwargs["steps"]
    assert float(rate) == pytest.approx(expected_rate, rel=RTOL, abs=0.0)


def test_theorem3_constant():
    # η(r-ρ)√T = 1, so the rate form is the constant itself.
    constant = float(
        theorem3_sagd_lower_bound_rate(
            learning_rate=0.5, radius=0.3, rho=0.1, steps=100
        )
    )
    assert constant == pytest.approx(THEOREM3_CONSTANT, rel=RTOL)
    assert abs(constant - 1.0221e-4) < 5e-9  # digest §4.3: "about 1.02e-4"
    assert constant >= 1 / (4 * 100**2)  # at least the paper's printed constant


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(learning_rate=0.25, radius=0.6, rho=0.1, steps=64), True),
        (
            dict(
                learning_rate=0.25,
                radius=0.1 + 1 / (0.25 * math.sqrt(128)),
                rho=0.1,
                steps=128,
            ),
            True,
        ),
        (dict(learning_rate=0.25, radius=0.35, rho=0.1, steps=256), True),
        (dict(learning_rate=0.5, radius=1.0, rho=0.0, steps=2), True),
        # digest §7.3 control: ρ threshold is 0.2 < 0.4
        (dict(learning_rate=0.25, radius=0.5, rho=0.4, steps=64), False),
        # η(r-ρ)√T = 1.2 > 1
        (dict(learning_rate=0.25, radius=0.7, rho=0.1, steps=64), False),
        # r = ρ: no drift
        (dict(learning_rate=0.25, radius=0.1, rho=0.1, steps=64), False),
        (dict(learning_rate=0.25, radius=0.0, rho=0.0, steps=64), False),
        # T = 1 makes no update (see test_theorem3_needs_two_steps)
        (dict(learning_rate=1.0, radius=1.0, rho=0.0, steps=1), False),
    ],
)
def test_theorem3_hypotheses(kwargs, expected):
    assert bool(theorem3_hypotheses_hold(**kwargs)) is expected


@pytest.mark.parametrize(
    "steps, learning_rate, rho", [(2, 0.3, 0.0), (5, 1.0, 0.1), (8, 1.0, 0.3)]
)
def test_theorem3_boundary_is_accepted_despite_rounding(steps, learning_rate, rho):
    # r = ρ + 1/(η√T) puts η(r-ρ)√T on the boundary 1; in float64 these cases
    # round to 1 + 2.2e-16, which the documented 1e-12 slack accepts.
    radius = rho + 1 / (learning_rate * math.sqrt(steps))
    assert learning_rate * (radius - rho) * math.sqrt(steps) > 1.0
    assert bool(
        theorem3_hypotheses_hold(
            learning_rate=learning_rate, radius=radius, rho=rho, steps=steps
        )
    )


@pytest.mark.parametrize("steps, learning_rate", [(8, 0.3), (15, 0.05), (19, 0.7)])
def test_theorem7_boundary_is_accepted_despite_rounding(steps, learning_rate):
    radius = 1 / (2 * learning_rate * math.sqrt(steps))
    assert 2 * learning_rate * radius * math.sqrt(steps) > 1.0
    assert bool(
        theorem7_hypotheses_hold(
            learning_rate=learning_rate, radius=radius, steps=steps, n=6
        )
    )


def test_theorem3_boundary_slack_is_tiny():
    # Just past η(r-ρ)√T = 1 by a relative 1e-9 (far above the 1e-12 slack): False.
    radius = 0.1 + (1 + 1e-9) / (0.25 * 8)
    assert not bool(
        theorem3_hypotheses_hold(learning_rate=0.25, radius=radius, rho=0.1, steps=64)
    )


# Digest §7.3: β=1, η=¼, ρ=0.1, r = ρ + 1/(η√T); min over τ of F(ŵ_τ), at τ=1.
TABLE_7_3 = [(64, 0.0553614), (128, 0.0561610), (256, 0.0565628)]


@pytest.mark.parametrize("steps, measured", TABLE_7_3)
def test_theorem3_reference_reproduces_table(steps, measured):
    rho, learning_rate = 0.1, 0.25
    radius = rho + 1 / (learning_rate * math.sqrt(steps))
    risks, _ = sagd_trap_suffix_risks(steps, learning_rate, radius, rho)
    assert int(np.argmin(risks)) == 0
    assert risks.min() == pytest.approx(measured, abs=5e-8)  # 6 printed digits


@pytest.mark.parametrize("steps, measured", TABLE_7_3)
def test_theorem3_below_table(steps, measured):
    rho, learning_rate = 0.1, 0.25
    kwargs = dict(
        learning_rate=learning_rate,
        radius=rho + 1 / (learning_rate * math.sqrt(steps)),
        rho=rho,
        steps=steps,
    )
    assert bool(theorem3_hypotheses_hold(**kwargs))
    bound = float(theorem3_sagd_lower_bound(**kwargs))
    rate = float(theorem3_sagd_lower_bound_rate(**kwargs))
    # η(r-ρ)√T = 1 here, so the bound is ¼(1/(2√2) - ρ)² at every T.
    assert bound == pytest.approx(0.25 * (1 / (2 * math.sqrt(2)) - rho) ** 2, rel=1e-12)
    assert measured >= bound >= rate > 0


def grid_points():
    for steps in (2, 3, 5, 8, 17, 64, 101):
        for learning_rate in (0.05, 0.25, 1.0, 4.0):
            for rho in (0.0, 0.01, 0.05):
                for drift in (0.3, 0.7, 1.0):  # η(r-ρ)√T
                    radius = rho + drift / (learning_rate * math.sqrt(steps))
                    yield steps, learning_rate, radius, rho


def test_theorem3_below_exact_risk_on_grid():
    """Exact risk >= bound >= rate wherever the hypotheses hold."""
    applied = 0
    for steps, learning_rate, radius, rho in grid_points():
        kwargs = dict(learning_rate=learning_rate, radius=radius, rho=rho, steps=steps)
        if not bool(theorem3_hypotheses_hold(**kwargs)):
            continue
        applied += 1
        risks, _ = sagd_trap_suffix_risks(steps, learning_rate, radius, rho)
        bound = float(theorem3_sagd_lower_bound(**kwargs))
        rate = float(theorem3_sagd_lower_bound_rate(**kwargs))
        assert risks.min() >= bound * (1 - 1e-12), kwargs
        assert bound >= rate * (1 - 1e-12) > 0, kwargs
    assert applied >= 100  # the check is not vacuous


def test_theorem3_needs_two_steps():
    # At T=1 the only iterate is w_1 = 0: risk 0, below the positive formula.
    kwargs = dict(learning_rate=1.0, radius=1.0, rho=0.0, steps=1)
    risks, _ = sagd_trap_suffix_risks(1, 1.0, 1.0, 0.0)
    assert risks.min() == 0.0
    assert float(theorem3_sagd_lower_bound(**kwargs)) > 0.0
    assert not bool(theorem3_hypotheses_hold(**kwargs))


def test_theorem3_against_sagd_trap_population_risk():
    steps, learning_rate, rho = 64, 0.25, 0.1
    radius = rho + 1 / (learning_rate * math.sqrt(steps))
    risks, averages = sagd_trap_suffix_risks(steps, learning_rate, radius, rho)
    problem = SAGDTrap(n=3, T=steps, rho=rho)
    bound = float(
        theorem3_sagd_lower_bound(
            learning_rate=learning_rate, radius=radius, rho=rho, steps=steps
        )
    )
    for tau in (1, steps // 2, steps):
        w = jnp.zeros(problem.d).at[:steps].set(averages[tau - 1])  # block 0 = I
        risk = problem.population_risk(w)
        assert bool(risk.exact)
        assert float(risk.value) == pytest.approx(risks[tau - 1], rel=1e-12)
        assert float(risk.value) >= bound


@pytest.mark.parametrize("radius", [0.0, 0.1, 0.25, 0.4, 0.5])
def test_theorem6_gap_is_half_radius_squared(radius):
    value = float(theorem6_sam_saer_gap(radius=radius))
    assert value == pytest.approx(radius**2 / 2, rel=RTOL, abs=0.0)
    # SAM stays at w=0; the flat minimizer is w* = -½ (digest §4.6).
    brute_force = sam_sharp_saer(0.0, radius) - sam_sharp_saer(-0.5, radius)
    assert value == pytest.approx(brute_force, rel=RTOL, abs=1e-15)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # (8 - 2)·(1/8)²/64
        (dict(learning_rate=1 / 24, radius=3.0, steps=16), 6 * 0.125**2 / 64),
        # odd T: ⌊7/2⌋ - 2 = 1 position, 1·0.05²/64
        (dict(learning_rate=0.1, radius=0.5, steps=7), 3.90625e-5),
        # T < 6: no position 3 <= s <= T/2, clipped to 0
        (dict(learning_rate=0.1, radius=0.5, steps=5), 0.0),
        # 48·0.01²/64
        (dict(learning_rate=0.01, radius=1.0, steps=100), 7.5e-5),
    ],
)
def test_theorem7_hand_values(kwargs, expected):
    value = float(theorem7_sam_lower_bound(**kwargs))
    assert value == pytest.approx(expected, rel=RTOL, abs=0.0)


@pytest.mark.parametrize("steps", [16, 32, 64, 128])
@pytest.mark.parametrize("regime", ["saturated", "fixed"])
def test_theorem7_below_digest_certificates(steps, regime):
    # Digest §7.5: n=6, η=1/24, certificate/(η²r²T) measured between 0.05 and 0.08.
    learning_rate = 1 / 24
    radius = (
        1 / (2 * learning_rate * math.sqrt(steps)) if regime == "saturated" else 0.5
    )
    kwargs = dict(learning_rate=learning_rate, radius=radius, steps=steps)
    assert bool(theorem7_hypotheses_hold(n=6, **kwargs))
    bound = float(theorem7_sam_lower_bound(**kwargs))
    scale = learning_rate**2 * radius**2 * steps
    assert 0 < bound <= 0.05 * scale


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(learning_rate=1 / 24, radius=3.0, steps=16, n=6), True),  # ηr√T = ½
        (dict(learning_rate=0.1, radius=0.5, steps=6, n=10), True),
        (dict(learning_rate=1 / 24, radius=3.0, steps=16, n=5), False),
        (dict(learning_rate=0.1, radius=0.5, steps=5, n=10), False),
        (dict(learning_rate=0.1, radius=2.0, steps=16, n=10), False),  # ηr√T = 0.8
    ],
)
def test_theorem7_hypotheses(kwargs, expected):
    assert bool(theorem7_hypotheses_hold(**kwargs)) is expected


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # 96·0.5·10/10²
        (dict(learning_rate=0.5, radius=0.0, rho=0.0, beta=1.0, steps=10, n=10), 4.8),
        # ηβT = 10: 24·10·0.09 + 96·10/400 + 768·100·0.04/400 = 21.6 + 2.4 + 7.68
        (dict(learning_rate=0.1, radius=0.3, rho=0.1, beta=2.0, steps=50, n=20), 31.68),
        # ηβT = 1, r < ρ: 24·0.04 + 96
        (dict(learning_rate=0.25, radius=0.2, rho=0.5, beta=1.0, steps=4, n=1), 96.96),
    ],
)
def test_lemma5_hand_values(kwargs, expected):
    value = lemma5_stability_bound(initial_distance=1.0, **kwargs)
    assert float(value) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize(
    "distance, factor",
    [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (2.0, 4.0), (3.0, 9.0)],
)
def test_lemma5_initial_distance_enters_as_max_1_d_squared(distance, factor):
    # Lemma 5's proof writes Lemma 1's D²/η as 1/η (D <= 1): the n⁻² term's 96
    # becomes 96·max(1, D²); the other two terms do not depend on D.
    kwargs = dict(learning_rate=0.1, radius=0.3, rho=0.1, beta=2.0, steps=50, n=20)
    value = lemma5_stability_bound(initial_distance=distance, **kwargs)
    expected = 21.6 + 2.4 * factor + 7.68
    assert float(value) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(empirical_risk=0.01, stability=0.02, beta=2.0), 0.16),
        (dict(empirical_risk=0.0, stability=1.0, beta=1.0), 3.0),
        (dict(empirical_risk=1.0, stability=0.0, beta=5.0), 4.0),
    ],
)
def test_lemma4_hand_values(kwargs, expected):
    value = lemma4_population_risk_bound(**kwargs)
    assert float(value) == pytest.approx(expected, rel=RTOL)


POPULATION_BOUNDS = [theorem4_sagd_population_bound, theorem8_sam_population_bound]


@pytest.mark.parametrize("fn", POPULATION_BOUNDS)
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # r = 0 (GD): 4/(0.25·100) + 288·0.25·100/100² = 0.16 + 0.72
        (
            dict(learning_rate=0.25, radius=0.0, rho=0.0, beta=1.0, steps=100, n=100),
            0.88,
        ),
        # 0.8 + 1.28 + 129.6 + 14.4 + 46.08, term by term by hand
        (
            dict(learning_rate=0.1, radius=0.3, rho=0.1, beta=2.0, steps=50, n=20),
            192.16,
        ),
    ],
)
def test_population_bound_hand_values(fn, kwargs, expected):
    value = fn(initial_distance=1.0, **kwargs)
    assert float(value) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("fn", POPULATION_BOUNDS)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(learning_rate=0.25, radius=0.6, rho=0.1, beta=1.0, steps=64, n=64),
        dict(learning_rate=0.01, radius=0.05, rho=0.2, beta=6.0, steps=7, n=3),
        dict(learning_rate=0.02, radius=1.5, rho=0.3, beta=3.0, steps=1000, n=50),
    ],
)
@pytest.mark.parametrize("distance", [0.7, 2.5])
def test_population_bound_is_lemma4_of_theorem2_and_lemma5(fn, kwargs, distance):
    empirical = theorem2_sagd_saer_bound(
        initial_distance=distance, **{k: v for k, v in kwargs.items() if k != "n"}
    )
    stability = lemma5_stability_bound(initial_distance=distance, **kwargs)
    composed = lemma4_population_risk_bound(
        empirical_risk=empirical, stability=stability, beta=kwargs["beta"]
    )
    value = fn(initial_distance=distance, **kwargs)
    assert float(value) == pytest.approx(float(composed), rel=RTOL)


@pytest.mark.parametrize("beta", [1.0, 6.0])
@pytest.mark.parametrize("n", [10, 1000])
@pytest.mark.parametrize("radius, rho", [(0.0, 0.0), (0.3, 0.1), (0.05, 0.2)])
def test_population_bound_corollary(beta, n, radius, rho):
    # T = n, η = 1/(4β): (16D² + 72max(1, D²))β/n + 18βr²n + 160β(r-ρ)_+²
    # (Theorem 4's corollary with Lemma 5's max(1, D²)).
    distance = 1.5
    value = theorem4_sagd_population_bound(
        learning_rate=1 / (4 * beta),
        radius=radius,
        rho=rho,
        beta=beta,
        steps=n,
        n=n,
        initial_distance=distance,
    )
    expected = (
        (16 * distance**2 + 72 * max(1.0, distance**2)) * beta / n
        + 18 * beta * radius**2 * n
        + 160 * beta * max(radius - rho, 0.0) ** 2
    )
    assert float(value) == pytest.approx(expected, rel=RTOL)


def test_counts_do_not_overflow():
    # n² = 1e10 overflows int32; counts are converted to floating point first.
    n = jnp.asarray(100_000, dtype=jnp.int32)
    value = lemma5_stability_bound(
        learning_rate=0.5,
        radius=0.0,
        rho=0.0,
        beta=1.0,
        steps=1,
        n=n,
        initial_distance=1.0,
    )
    assert float(value) == pytest.approx(96 * 0.5 / 1e10, rel=RTOL)


# ----------------------------------------------------------------------------------
# jit and vmap with traced hyperparameters.

VALID = {
    theorem1_flat_erm_excess_risk: dict(rho=0.3),
    lemma1_regret_bound: dict(
        learning_rate=0.2, radius=0.6, rho=0.1, beta=1.0, steps=64, initial_distance=1.0
    ),
    theorem2_sagd_saer_bound: dict(
        learning_rate=0.2, radius=0.6, rho=0.1, beta=1.0, steps=64, initial_distance=1.0
    ),
    theorem5_sam_empirical_risk_bound: dict(
        learning_rate=0.2, radius=0.6, rho=0.1, beta=1.0, steps=64, initial_distance=1.0
    ),
    theorem3_sagd_lower_bound: dict(learning_rate=0.25, radius=0.6, rho=0.1, steps=64),
    theorem3_sagd_lower_bound_rate: dict(
        learning_rate=0.25, radius=0.6, rho=0.1, steps=64
    ),
    theorem3_hypotheses_hold: dict(learning_rate=0.25, radius=0.6, rho=0.1, steps=64),
    theorem6_sam_saer_gap: dict(radius=0.4),
    theorem7_sam_lower_bound: dict(learning_rate=0.04, radius=3.0, steps=16),
    theorem7_hypotheses_hold: dict(learning_rate=0.04, radius=3.0, steps=16, n=6),
    lemma4_population_risk_bound: dict(empirical_risk=0.1, stability=0.2, beta=2.0),
    lemma5_stability_bound: dict(
        learning_rate=0.4,
        radius=0.3,
        rho=0.1,
        beta=1.0,
        steps=50,
        n=20,
        initial_distance=1.0,
    ),
    theorem4_sagd_population_bound: dict(
        learning_rate=0.2,
        radius=0.3,
        rho=0.1,
        beta=1.0,
        steps=50,
        n=20,
        initial_distance=1.0,
    ),
    theorem8_sam_population_bound: dict(
        learning_rate=0.2,
        radius=0.3,
        rho=0.1,
        beta=1.0,
        steps=50,
        n=20,
        initial_distance=1.0,
    ),
}
COUNTS = ("steps", "n")
CASES = [(fn, name) for fn, kwargs in VALID.items() for name in kwargs]


def test_every_public_function_has_a_valid_case():
    assert {fn.__name__ for fn in VALID} == set(bounds.__all__)


def batch_of(name, value):
    if name in COUNTS:
        return jnp.asarray([value, value + 1, value + 7])
    # Scaling down keeps every argument inside its limits (all limits are upper ones).
    return jnp.asarray([0.5 * value, 0.8 * value, value])


@pytest.mark.parametrize("fn, name", CASES, ids=[f"{f.__name__}-{n}" for f, n in CASES])
def test_vmap_equals_python_loop(fn, name):
    kwargs = VALID[fn]
    batch = batch_of(name, kwargs[name])
    batched = jax.vmap(lambda x: fn(**{**kwargs, name: x}))(batch)
    looped = [fn(**{**kwargs, name: x.item()}) for x in batch]
    assert batched.shape == (3,)
    if batched.dtype == jnp.bool_:
        np.testing.assert_array_equal(batched, np.stack(looped))
    else:
        # Same formula elementwise; fusion may reorder by an ulp or two.
        np.testing.assert_allclose(batched, np.stack(looped), rtol=RTOL, atol=0)


def test_vmap_over_learning_rate_changes_the_value():
    # Guards the test above against a function that ignores its batched argument.
    rates = jnp.asarray([0.05, 0.1, 0.2])
    values = jax.vmap(
        lambda lr: theorem4_sagd_population_bound(
            **{**VALID[theorem4_sagd_population_bound], "learning_rate": lr}
        )
    )(rates)
    assert len(set(np.asarray(values).tolist())) == 3


@pytest.mark.parametrize("fn", list(VALID), ids=lambda f: f.__name__)
def test_jit_with_every_argument_traced(fn):
    kwargs = VALID[fn]
    arrays = {name: jnp.asarray(value, jnp.float64) for name, value in kwargs.items()}
    jitted = jax.jit(lambda kw: fn(**kw))(arrays)
    eager = fn(**kwargs)
    assert jitted.shape == () and jitted.dtype == eager.dtype
    if eager.dtype == jnp.bool_:
        assert bool(jitted) == bool(eager)
    else:
        np.testing.assert_allclose(jitted, eager, rtol=RTOL, atol=0)


def test_traced_values_are_not_checked():
    # Documented: a traced η above 1/(2β) is not (and cannot be) rejected.
    kwargs = {**VALID[lemma5_stability_bound]}
    del kwargs["learning_rate"]
    value = jax.jit(lambda lr: lemma5_stability_bound(learning_rate=lr, **kwargs))(0.9)
    assert np.isfinite(float(value))


# ----------------------------------------------------------------------------------
# Bad input.

BAD_INPUTS = [
    (theorem1_flat_erm_excess_risk, "rho", -0.1, ">= 0.0, got -0.1"),
    (theorem1_flat_erm_excess_risk, "rho", 0.6, "<= 0.5, got 0.6"),
    (theorem1_flat_erm_excess_risk, "rho", math.nan, "finite, got nan"),
    (lemma5_stability_bound, "learning_rate", 0.7, "<= 1/(2*beta) = 0.5, got 0.7"),
    (theorem2_sagd_saer_bound, "learning_rate", 0.3, "<= 1/(4*beta) = 0.25, got 0.3"),
    (lemma1_regret_bound, "learning_rate", 0.0, "> 0.0, got 0.0"),
    (theorem5_sam_empirical_risk_bound, "learning_rate", math.inf, "finite, got inf"),
    (theorem4_sagd_population_bound, "learning_rate", 0.26, "1/(4*beta) = 0.25"),
    (theorem8_sam_population_bound, "learning_rate", 0.26, "1/(4*beta) = 0.25"),
    (theorem4_sagd_population_bound, "n", 0, ">= 1, got 0"),
    (theorem8_sam_population_bound, "steps", 0, ">= 1, got 0"),
    (lemma5_stability_bound, "steps", 2.5, "integer, got 2.5"),
    (lemma5_stability_bound, "n", -3, ">= 1, got -3"),
    (lemma5_stability_bound, "beta", 0.0, "> 0.0, got 0.0"),
    (theorem2_sagd_saer_bound, "initial_distance", -1.0, ">= 0.0, got -1.0"),
    (theorem2_sagd_saer_bound, "rho", -0.5, ">= 0.0, got -0.5"),
    (theorem3_sagd_lower_bound, "radius", -0.1, ">= 0.0, got -0.1"),
    (theorem3_sagd_lower_bound_rate, "steps", 0, ">= 1, got 0"),
    (theorem3_hypotheses_hold, "learning_rate", -1.0, "> 0.0, got -1.0"),
    (theorem6_sam_saer_gap, "radius", 0.6, "<= 0.5, got 0.6"),
    (theorem7_sam_lower_bound, "steps", 0, ">= 1, got 0"),
    (theorem7_hypotheses_hold, "n", 0, ">= 1, got 0"),
    (lemma4_population_risk_bound, "stability", -1.0, ">= 0.0, got -1.0"),
    (lemma4_population_risk_bound, "empirical_risk", math.nan, "finite, got nan"),
    (theorem4_sagd_population_bound, "radius", jnp.ones(3), "scalar, got shape (3,)"),
]


@pytest.mark.parametrize(
    "fn, name, value, message",
    BAD_INPUTS,
    ids=[f"{f.__name__}-{n}-{m}" for f, n, _, m in BAD_INPUTS],
)
def test_bad_input_names_call_argument_and_value(fn, name, value, message):
    kwargs = {**VALID[fn], name: value}
    pattern = (
        re.escape(f"`{fn.__name__}({name}=...)` must be ") + ".*" + re.escape(message)
    )
    with pytest.raises(ValueError, match=pattern):
        fn(**kwargs)


@pytest.mark.parametrize(
    "fn, factor",
    [
        (theorem2_sagd_saer_bound, 4),
        (lemma1_regret_bound, 4),
        (theorem5_sam_empirical_risk_bound, 4),
        (theorem4_sagd_population_bound, 4),
        (theorem8_sam_population_bound, 4),
        (lemma5_stability_bound, 2),
    ],
)
@pytest.mark.parametrize("beta", [1.0, 3.0, 6.0])
def test_step_size_limit_is_inclusive_and_tight(fn, factor, beta):
    kwargs = {**VALID[fn], "beta": beta}
    limit = 1 / (factor * beta)
    assert np.isfinite(float(fn(**{**kwargs, "learning_rate": limit})))
    with pytest.raises(ValueError, match=r"learning_rate=\.\.\.\)` must be <="):
        fn(**{**kwargs, "learning_rate": limit * (1 + 1e-9)})
