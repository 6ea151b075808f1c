"""Every benchmark script runs at its smoke size and writes the JSON it promises.

Correctness only: the scripts run in a subprocess (as CI and users run them), and the
checks are on the structure of the JSON and on the agreement between methods, never
on timings.
"""

import json
import math
import statistics
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


def test_bench_sam_mlp_smoke(tmp_path):
    payload = run_smoke("bench_sam_mlp", tmp_path)
    assert payload["benchmark"] == "bench_sam_mlp" and payload["smoke"] is True
    env = payload["environment"]
    assert env["dtype"] == "float32" and env["versions"]["equinox"]
    methods = {row["method"]: row for row in payload["results"]}
    assert set(methods) == {
        "adam",
        "flatjax_sam",
        "flatjax_sam_unchecked",
        "optax_contrib_sam",
    }
    for row in methods.values():
        assert positive(row["steps_per_s"]) and positive(row["ratio_to_adam"]), row
        assert positive(row["compiled_memory"]["total_bytes"]), row
        assert len(row["step_times_s"]) == payload["rounds"]
        assert math.isfinite(row["final_loss"])
    assert methods["adam"]["ratio_to_adam"] == 1.0
    # The same SAM in both libraries: float32 rounding only after a few steps.
    assert payload["flatjax_vs_contrib_max_abs_param_diff"] < 1e-5
    names = [t["target"] for t in payload["targets"]]
    assert any(n.startswith("flatjax_sam step") for n in names)


def test_gpu_check_smoke(tmp_path):
    payload = run_smoke("gpu_check", tmp_path)
    check_environment(payload, "gpu_check")
    assert payload["environment"]["flatjax"]["process_count"] == 1
    install = payload["install"]
    assert install["float64_on_device"] is True
    assert install["float64_relative_error"] < 1e-12
    assert set(payload["benchmarks"]) == {"bench_roofline"}  # bench_sweep: full only
    for name, bench in payload["benchmarks"].items():
        assert bench["benchmark"] == name and bench["smoke"] is True
    sweep = payload["theorem3_sweep"]
    assert sweep["runs"] == 3 * 64 and sweep["nonfinite_runs"] == 0
    assert positive(sweep["runs_per_s"]) and sweep["device_count"] >= 1
    # Theorem 3: at r = rho (the control) SA-GD stays put; above it, it drifts
    # into the spurious flat region, where the population risk is larger.
    risks = {
        row["radius"]: row["mean_population_risk_tau1"] for row in sweep["per_radius"]
    }
    assert risks[0.6] > risks[0.1]
    assert all(t["passed"] for t in payload["targets"])


def test_bench_measures_smoke(tmp_path):
    payload = run_smoke("bench_measures", tmp_path)
    check_environment(payload, "bench_measures")
    sizes = payload["sizes"]
    assert sizes["parameters"] > 0 and sizes["num_probes"] >= sizes["probe_batch"]
    # The product is a Hessian-vector product (smooth tanh net: a central finite
    # difference of gradients agrees to O(h^2) + roundoff), and a vmapped chunk
    # computes the same products as one at a time.
    assert payload["agreement"]["hvp_vs_finite_difference_relative"] < 1e-5
    assert payload["agreement"]["chunk_vs_single_relative"] < 1e-12
    for name in ("gradient", "hvp", "hvp_chunk"):
        assert positive(payload["throughput"][name]["median_s"]), name
    memory = payload["memory"]
    for program in ("gradient", "trace_chunked", "trace_one_at_a_time"):
        assert positive(memory[program]["total_bytes"]), program
    # Chunking bounds the working memory: one probe at a time needs less than a
    # chunk, which needs less than every probe at once.
    assert (
        memory["trace_one_at_a_time"]["temp_bytes"]
        < memory["trace_chunked"]["temp_bytes"]
        <= memory["trace_all_at_once"]["temp_bytes"]
    )
    assert payload["recompilation"]["recompiled"] is False
    names = [t["target"] for t in payload["targets"]]
    assert any("HVP" in n for n in names) and any("second call" in n for n in names)


def test_bench_checks_smoke(tmp_path):
    payload = run_smoke("bench_checks", tmp_path)
    check_environment(payload, "bench_checks")
    labels = [row["label"] for row in payload["results"]]
    assert labels == ["SAMTrap SAM", "SAGDTrap SA-GD"]
    for row in payload["results"]:
        # The checks only read their inputs: the two programs agree bit for bit.
        assert row["max_abs_diff"] == 0.0, row
        assert len(row["ratios"]) == row["rounds"] >= 2
        assert all(positive(r) for r in row["ratios"])
        assert positive(row["median_checked_s"]) and positive(row["median_unchecked_s"])
        assert row["overhead"] == pytest.approx(statistics.median(row["ratios"]) - 1)
    assert len(payload["targets"]) == 2
