"""The rank statistics of ``measures_predict`` on tables with known answers.

The experiment itself runs in ``test_reproduce.py`` (``--quick``); here the Kendall
coefficients are checked on constructed tables, including a Simpson's-paradox table
where the overall and the granulated coefficients have opposite signs.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from flatjax.problems import FlatERM
from flatjax.reproduce._measures_predict import (
    MEASURES,
    _null_half_width,
    granulated_tau,
    kendall_tau,
    measure_point,
    report_check,
)


def test_kendall_tau_of_monotone_and_reversed_orders():
    x = np.arange(10.0)
    assert kendall_tau(x, x**3) == pytest.approx(1.0)
    assert kendall_tau(x, -x) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau(x, np.ones(10)))  # constant risk: undefined
    assert math.isnan(kendall_tau([1.0], [2.0]))


def test_granulated_tau_sees_what_the_overall_tau_hides():
    # Within each learning rate, a larger radius gives a larger measure and a lower
    # risk (tau = -1 along radius); across learning rates both grow together, so the
    # overall tau is positive. Jiang et al.'s granulation separates the two.
    rows = []
    for seed_index in range(2):
        for learning_rate in (0.1, 0.2, 0.3):
            for radius in (0.1, 0.2):
                base = 10 * learning_rate
                rows.append(
                    {
                        "learning_rate": learning_rate,
                        "radius": radius,
                        "iterate": "final",
                        "seed_index": seed_index,
                        "measure": base + radius,
                        "population_risk": base - radius,
                    }
                )
    table = pd.DataFrame(rows)
    assert kendall_tau(table.measure, table.population_risk) > 0.5
    granulated = granulated_tau(table, "measure", ["learning_rate", "radius"])
    assert granulated["radius"] == pytest.approx(-1.0)
    assert granulated["learning_rate"] == pytest.approx(1.0)


def test_report_rows_are_never_verdicts_and_say_so():
    check = report_check("tau", 0.3, _null_half_width(50), 50, "report")
    assert check.kind == "report" and check.status == "REPORT"
    assert not check.passed and not check.failed
    assert check.criterion.startswith("none (informational")
    # 95% interval of tau under independence, n = 50: 1.96 sqrt(2(2n+5)/(9n(n-1))).
    assert check.half_width == pytest.approx(1.96 * math.sqrt(210 / (9 * 50 * 49)))


def test_measures_at_theorem1_pair_have_the_theorem_signs():
    problem = FlatERM(n=3, rho=0.25)
    S = problem.sample_conditioned(jax.random.key(0))
    key = jax.random.key(1)
    flat = measure_point(problem, S, problem.flat_erm(S), key)
    sharp = measure_point(problem, S, problem.sharp_erm(), key)
    assert set(flat) == set(MEASURES)
    assert all(bool(jnp.isfinite(v)) for v in flat.values())
    # e_I lies in a rho-ball of zero loss: its curvature and SAER gap at r < rho
    # are exactly 0, while rho e_d sits on the edge of the flat region.
    assert float(flat["top_eigenvalue"]) == pytest.approx(0.0, abs=1e-12)
    assert float(flat["saer_gap"]) == 0.0
    assert float(sharp["saer_gap"]) > 0.0
    # rho e_d is on the kink of [sqrt(s) - rho]_+^2 / 2 (one-sided curvature 1
    # outward, 0 inward); autodiff returns a value in between, positive.
    assert float(sharp["top_eigenvalue"]) > 0.0
