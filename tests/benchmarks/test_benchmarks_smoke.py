"""Every benchmark script runs at its smoke size and writes the JSON it promises.

Correctness only: the scripts run in a subprocess (as CI and users run them), and the
checks are on the structure of the JSON and on the agreement between methods, never
on timings.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def run_smoke(script, tmp_path):
    out = tmp_path / f"{script}.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / f"{script}.py"),
            "--smoke",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "|---" in completed.stdout  # a markdown table was printed
    return json.loads(out.read_text())


def check_environment(payload, name):
    assert payload["benchmark"] == name
    assert payload["smoke"] is True
    env = payload["environment"]
    for key in ("date_utc", "platform", "device_kind", "cpu_model", "versions"):
        assert env[key], key
    assert env["x64"] is True and env["dtype"] == "float64"
    assert env["versions"]["jax"] and env["versions"]["optax"]
    for target in payload["targets"]:
        assert set(target) >= {"target", "measured", "goal", "passed"}
        assert isinstance(target["passed"], bool)


def positive(x):
    return isinstance(x, float | int) and math.isfinite(x) and x > 0


def test_bench_sweep_smoke(tmp_path):
    payload = run_smoke("bench_sweep", tmp_path)
    check_environment(payload, "bench_sweep")
    (group,) = payload["groups"]
    assert group["problem"] == "SAMTrap" and group["algorithm"] == "sam"
    assert set(group["sizes"]) >= {"n", "T", "d", "steps", "updates"}
    methods = {row["method"] for row in group["results"]}
    assert methods == {
        "numpy_paper",
        "numpy",
        "numpy_batched",
        "optax_one_jit",
        "optax_vmap_scan",
        "flatjax_vmap",
        "flatjax_fused",
    }
    for row in group["results"]:
        assert positive(row["dataset_steps_per_s"]), row
        assert (
            row["dataset_steps_per_s_min"]
            <= row["dataset_steps_per_s"]
            <= row["dataset_steps_per_s_max"]
        )
        assert positive(row["ratio_best_over_this"]), row
        # Every method computes the same SAM trajectory: the last iterates agree
        # to rounding (entries are at most ~eta * r = 0.18 here).
        assert row["max_abs_diff_vs_flatjax"] < 1e-12, row
        if row["method"] in ("flatjax_vmap", "flatjax_fused"):
            assert row["compile_s"] >= 0
    assert set(group["recompilation"]) == {"flatjax_vmap", "flatjax_fused"}
    for recompilation in group["recompilation"].values():
        assert recompilation["recompiled"] is False
        assert recompilation["cache_size_before"] == recompilation["cache_size_after"]
    names = [t["target"] for t in payload["targets"]]
    assert any("/ numpy at" in n for n in names) and any(
        "optax_one_jit" in n for n in names
    )
    assert any("recompilation" in n for n in names)


def test_bench_roofline_smoke(tmp_path):
    payload = run_smoke("bench_roofline", tmp_path)
    check_environment(payload, "bench_roofline")
    copy = payload["copy_bandwidth"]
    assert positive(copy["numpy_copyto"]["bytes_per_s"])
    assert positive(copy["jax_inplace"]["bytes_per_s"])
    assert payload["limit_bytes_per_s"] == pytest.approx(
        max(copy["numpy_copyto"]["bytes_per_s"], copy["jax_inplace"]["bytes_per_s"])
    )
    assert positive(payload["matmul"]["flops_per_s"])
    algorithms = {(r["problem"], r["algorithm"]) for r in payload["algorithms"]}
    assert ("SAGDTrap", "sa_gd") in algorithms
    for row in payload["algorithms"]:
        models = row["bytes_per_dataset_step"]
        d = row["sizes"]["d"]
        assert models["minimal"] >= 16 * d
        assert models["minimal"] <= models["two_pass"] <= models["runner"]
        for model in models:
            expected = row["dataset_steps_per_s"] * models[model]
            assert row[f"achieved_bytes_per_s_{model}"] == pytest.approx(expected)
            assert row[f"fraction_of_copy_{model}"] == pytest.approx(
                expected / payload["limit_bytes_per_s"]
            )
    assert any("SA-GD" in t["target"] for t in payload["targets"])
