"""`flatjax reproduce` end to end: every experiment runs and no verdict fails.

By default the reproduction runs at the ``tiny`` sizes with 4 seeds, the settings of
the mutation suite (``tests/reproduce/test_mutations.py``): with no fault planted no
verdict fails there, so each of that suite's kills is the fault's doing. The quick
sizes at 16 seeds run under ``-m slow`` (``make test-slow``).

With few seeds some verdicts cannot be decided (they need more seeds): they must say
INSUFFICIENT SEEDS, never PASS or FAIL; upper bounds above the trivial bound say NOT
INFORMATIVE. The verdict machinery (intervals, statuses, exit codes, formatting) is
tested on hand-made values below.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from flatjax.cli import main
from flatjax.reproduce import (
    EXIT_INSUFFICIENT_SEEDS,
    EXPERIMENTS,
    KINDS,
    Experiment,
    exit_status,
    reproduce,
)
from flatjax.reproduce._verdicts import (
    format_value,
    frequency_check,
    informative_upper_check,
    make_check,
    mean_ci,
    upper_check_and_row,
    wilson_interval,
)

#: The mutation suite's seeds (``test_mutations.SEEDS``) at the ``tiny`` sizes.
TINY_SEEDS = 4

#: (mode, seeds, at least this many checks, at least this many PASS)
RUNS = {"tiny": ("tiny", TINY_SEEDS, 70, 50), "quick": ("quick", 16, 60, 50)}
MODES = ["tiny", pytest.param("quick", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One reproduction per mode, shared by the tests of this module."""
    cache = {}

    def get(mode):
        if mode not in cache:
            size, seeds, _, _ = RUNS[mode]
            out = tmp_path_factory.mktemp(f"results_{mode}")
            experiments = reproduce(
                size, seeds=seeds, out=out, progress=False, echo=lambda s: None
            )
            cache[mode] = out, experiments
        return cache[mode]

    return get


@pytest.mark.parametrize("mode", MODES)
def test_no_verdict_fails(mode, runs):
    _, experiments = runs(mode)
    _, _, min_checks, min_passed = RUNS[mode]
    assert [e.name for e in experiments] == list(EXPERIMENTS)
    failed = [(e.name, c.quantity) for e in experiments for c in e.checks if c.failed]
    assert not failed
    checks = [c for e in experiments for c in e.checks]
    assert all(e.checks for e in experiments)
    assert len(checks) >= min_checks
    assert {c.kind for c in checks} == set(KINDS)
    assert sum(c.passed for c in checks) >= min_passed
    assert exit_status(experiments) in (0, EXIT_INSUFFICIENT_SEEDS)


@pytest.mark.parametrize("mode", MODES)
def test_report_figures_tables_and_versions_are_written(mode, runs):
    out, experiments = runs(mode)
    report = (out / "report.md").read_text()
    assert "# flatjax reproduce" in report and "**FAIL**" not in report
    assert "jax " in report and "criterion" in report and "± 0 " not in report
    for experiment in experiments:
        assert experiment.title in report
        for figure in experiment.figures:
            assert figure.exists() and figure.stat().st_size > 5000
            assert f"({figure.name})" in report
    data = json.loads((out / "report.json").read_text())
    assert data["environment"]["x64"] is True and "jax" in data["environment"]
    assert len(data["checks"]) == sum(len(e.checks) for e in experiments)
    assert (data["mode"], data["seeds"]) == RUNS[mode][:2]
    assert data["exit_status"] == exit_status(experiments)
    checks = pd.read_parquet(out / "checks.parquet")
    assert {"experiment", "kind", "quantity", "measured", "criterion", "status"} <= set(
        checks.columns
    )
    theorem3 = pd.read_parquet(out / "theorem3.parquet").set_index("steps")
    # The T = 64 row is the paper's reference value (Theorem 3, exact trajectory).
    assert theorem3.loc[64, "risk_min_tau"] == pytest.approx(0.0553614, abs=1e-7)
    theorem7 = pd.read_parquet(out / "theorem7.parquet")
    assert set(theorem7.regime) == {
        "fixed r = 1/2",
        "eta r sqrt(T) = 1/2",
        "eta = 1/(2 sqrt(T)), r = 1",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "--only", "theorem9"], "--only: invalid choice: 'theorem9'"),
        (["reproduce", "--seeds", "0"], "--seeds: must be a positive integer, got '0'"),
    ],
)
def test_bad_input_fails_before_compute(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.md").exists()


def test_a_folder_with_another_configuration_is_refused(tmp_path, capsys):
    (tmp_path / "reproduce.json").write_text('{"mode": "full", "seeds": 5}')
    assert (
        main(
            ["reproduce", "--seeds", "3", "--out", str(tmp_path), "--only", "theorem6"]
        )
        == 2
    )
    assert "holds a reproduction with" in capsys.readouterr().err


# ----------------------------------------------------------------------------------
# The verdict machinery on hand-made values.


def test_one_value_has_no_interval_and_identical_values_none_either():
    assert mean_ci([0.5]) == (0.5, None)
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, None)
    check = make_check("q", "exact", [0.25], "t", True, "c")
    assert format_value(check) == "0.25"
    assert "±" not in format_value(make_check("q", "exact", [1.0, 1.0], "t", True, ""))


def test_student_t_interval_for_small_samples():
    # Two values 0 and 1: mean 1/2, s = 1/sqrt(2), t_{0.975, 1} = 12.706.
    mean, half = mean_ci([0.0, 1.0])
    assert mean == 0.5
    assert half == pytest.approx(12.7062047 * (1 / math.sqrt(2)) / math.sqrt(2))


def test_wilson_interval_against_hand_values():
    # 0 of 10: [0, z^2/(n + z^2)] = [0, 0.2775] (z = 1.96).
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12)
    assert high == pytest.approx(1.959964**2 / (10 + 1.959964**2), rel=1e-6)


def test_consistent_significant_digits():
    check = make_check("q", "lower bound", [0.591, 0.651], "t", True, "c")
    assert format_value(check) == "0.62 ± 0.38"
    check = make_check("q", "lower bound", np.linspace(0.6, 0.64, 100), "t", True, "")
    assert format_value(check) == "0.6200 ± 0.0023"  # s = 0.01166, t = 1.984


def test_too_few_seeds_or_draws_are_insufficient_not_pass():
    check = make_check("q", "upper bound", [0.1], "t", True, "c", min_seeds=2)
    assert check.status == "INSUFFICIENT SEEDS"
    check = informative_upper_check("q", [0.1], bound=0.5, trivial=1.0, theory="t")
    assert check.status == "INSUFFICIENT SEEDS"
    check = frequency_check("f", [True] * 20, 0.37, "t", minimum=1 / 3)
    assert check.status == "INSUFFICIENT SEEDS"
    check = informative_upper_check("q", [0.1, 0.2], bound=2.0, trivial=1.0, theory="t")
    assert check.status == "NOT INFORMATIVE"
    check = informative_upper_check("q", [0.1, 0.2], bound=0.1, trivial=1.0, theory="t")
    assert check.status == "FAIL"


@pytest.mark.parametrize("limits", [{}, {"minimum": 0.3, "maximum": 0.5}])
def test_frequency_check_needs_exactly_one_limit(limits):
    with pytest.raises(ValueError, match=r"needs exactly one of `minimum` and"):
        frequency_check("f", [True] * 20, 0.37, "t", **limits)


def test_upper_check_and_row_draw_what_the_verdict_judged():
    check, row = upper_check_and_row(
        "q", [0.1, 0.3], 2.0, 1.0, "t", column="risk", n=4, optimizer="sam"
    )
    assert check.status == "NOT INFORMATIVE"
    assert row == {"n": 4, "optimizer": "sam", "risk": 0.2, "bound": 2.0}


def test_exit_status():
    def experiment(*statuses):
        checks = [make_check("q", "exact", [0.0], "t", True, "c") for _ in statuses]
        for check, status in zip(checks, statuses, strict=True):
            check.status = status
        return Experiment("e", "E", checks, [], {})

    assert exit_status([experiment("PASS", "NOT INFORMATIVE")]) == 0
    assert exit_status([experiment("PASS", "INSUFFICIENT SEEDS")]) == 3
    assert exit_status([experiment("INSUFFICIENT SEEDS", "FAIL")]) == 1
    assert EXIT_INSUFFICIENT_SEEDS == 3
