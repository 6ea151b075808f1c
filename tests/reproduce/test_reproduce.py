"""`flatjax reproduce --quick` at a reduced seed count: every verdict passes."""

import pandas as pd
import pytest

from flatjax.cli import main
from flatjax.reproduce import EXPERIMENTS, reproduce


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    experiments = reproduce(
        "quick", seeds=16, out=out, progress=False, echo=lambda s: None
    )
    return out, experiments


def test_every_verdict_passes(quick_run):
    _, experiments = quick_run
    assert [e.name for e in experiments] == list(EXPERIMENTS)
    failed = [
        (e.name, c.quantity) for e in experiments for c in e.checks if not c.passed
    ]
    assert not failed
    assert sum(len(e.checks) for e in experiments) >= 40


def test_report_figures_and_tables_are_written(quick_run):
    out, experiments = quick_run
    report = (out / "report.md").read_text()
    assert "# flatjax reproduce" in report and "FAIL" not in report
    for experiment in experiments:
        assert experiment.title in report
        for figure in experiment.figures:
            assert figure.exists() and figure.stat().st_size > 5000
            assert f"({figure.name})" in report
    checks = pd.read_parquet(out / "checks.parquet")
    assert {
        "experiment",
        "quantity",
        "measured",
        "half_width",
        "theory",
        "passed",
    } <= set(checks.columns)
    assert checks.passed.all()
    theorem3 = pd.read_parquet(out / "theorem3.parquet")
    assert {"steps", "risk_tau1", "bound"} <= set(theorem3.columns)
    # The T = 64 row is the paper digest's §7.3 value.
    assert theorem3.set_index("steps").loc[64, "risk_tau1"] == pytest.approx(
        0.0553614, abs=1e-7
    )
    runs = pd.read_parquet(out / "data" / "thm3_T64" / "runs.parquet")
    assert {"radius", "rho", "population_risk_tau1", "saer_tau1", "nonfinite"} <= set(
        runs.columns
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "--only", "theorem9"], "unknown experiment(s) ['theorem9']"),
        (["reproduce", "--seeds", "0"], "must be an int >= 1, got 0"),
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
