"""Sweeps: equal to a loop, invariant to chunking and devices, resumable, strict."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from flatjax.optim import gd, sam
from flatjax.problems import LeastSquares, SAMSharp
from flatjax.runner import loo_stability, run
from flatjax.sweep import SweepConfig, run_sweep

REPO = Path(__file__).resolve().parents[2]


def small_config(**overrides):
    arguments = {
        "problem": "LeastSquares",
        "optimizer": "sam",
        "grid": {"d": [4], "n": [6], "learning_rate": [0.25, 0.5], "radius": [0.05]},
        "seeds": 50,
        "steps": 8,
        "block_size": 8,
    }
    arguments.update(overrides)
    return SweepConfig(**arguments)


def test_thousand_seed_sweep_equals_a_python_loop_bit_for_bit():
    config = small_config(
        grid={"d": [4], "n": [6], "learning_rate": [0.25], "radius": [0.05]},
        seeds=1000,
        block_size=1,
    )
    runs = run_sweep(config, chunk_size=250).runs
    group_key = jax.random.fold_in(jax.random.key(config.seed), 0)

    @jax.jit
    def one(index):
        # The documented key derivation: (sweep seed, group, run index).
        sample_key, population_key = jax.random.split(
            jax.random.fold_in(group_key, index)
        )
        problem = LeastSquares(d=4, n=6)
        result = run(
            problem,
            sam(0.25, 0.05),
            problem.sample(sample_key),
            8,
            suffix_starts=(1, 8),
            key=population_key,
        )
        last_norm = result.metrics["iterate_norm"][-1]
        return result.suffix_metrics["population_risk"], last_norm

    looped = [one(i) for i in range(1000)]
    risks = np.array([float(r[0][0]) for r in looped])
    last = np.array([float(r[0][1]) for r in looped])
    norms = np.array([float(r[1]) for r in looped])
    np.testing.assert_array_equal(runs["population_risk_tau1"].to_numpy(), risks)
    np.testing.assert_array_equal(runs["population_risk_tau8"].to_numpy(), last)
    np.testing.assert_array_equal(runs["final_iterate_norm"].to_numpy(), norms)


def test_results_do_not_depend_on_the_chunk_size():
    config = small_config()
    tables = [run_sweep(config, chunk_size=c).runs for c in (7, 64, "all")]
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    pd.testing.assert_frame_equal(tables[0], tables[2], check_exact=True)
    assert len(tables[0]) == 100 and tables[0]["run"].tolist() == list(range(100))


def test_results_do_not_depend_on_the_device_count(tmp_path):
    config = small_config(seeds=40)
    one_device = run_sweep(config, chunk_size=64).runs
    script = textwrap.dedent(
        f"""
        import jax
        jax.config.update("jax_enable_x64", True)
        assert len(jax.devices()) == 4, jax.devices()
        from flatjax.sweep import SweepConfig, run_sweep
        config = SweepConfig(**{config.to_dict()!r})
        run_sweep(config, {str(tmp_path / "four")!r}, chunk_size=64, progress=False)
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=REPO)
    four_devices = pd.read_parquet(tmp_path / "four" / "runs.parquet")
    pd.testing.assert_frame_equal(one_device, four_devices, check_exact=True)
    metadata = json.loads((tmp_path / "four" / "metadata.json").read_text())
    assert len(metadata["devices"]) == 4


def test_persisted_sweep_round_trips_and_refuses_another_configuration(tmp_path):
    config = small_config()
    first = run_sweep(config, tmp_path, chunk_size=16).runs
    stored = pd.read_parquet(tmp_path / "runs.parquet")
    pd.testing.assert_frame_equal(first, stored, check_exact=True)
    chunk_files = sorted((tmp_path / "chunks").glob("*.parquet"))
    assert len(chunk_files) == 7  # 100 runs in chunks of 16
    mtimes = {p: p.stat().st_mtime_ns for p in chunk_files}
    again = run_sweep(config, tmp_path, chunk_size=16).runs  # nothing recomputed
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert {p: p.stat().st_mtime_ns for p in chunk_files} == mtimes
    assert (tmp_path / "log.txt").read_text().count("computed") == 7
    changed = small_config(seeds=51)
    with pytest.raises(ValueError, match="holds a different sweep"):
        run_sweep(changed, tmp_path)


def test_corrupt_or_partial_chunks_are_recomputed(tmp_path):
    config = small_config()
    first = run_sweep(config, tmp_path, chunk_size=32).runs
    chunks = sorted((tmp_path / "chunks").glob("*.parquet"))
    chunks[1].write_bytes(chunks[1].read_bytes()[:100])  # truncated
    chunks[2].unlink()  # missing
    again = run_sweep(config, tmp_path, chunk_size=32).runs
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert (tmp_path / "log.txt").read_text().count("computed") == 4 + 2


CONFIG_TOML = """
[sweep]
problem = "SAGDTrap"
optimizer = "sa_gd"
maximizer = "adversarial"
seeds = 64
block_size = 4

[grid]
n = [3]
T = [16]
rho = [0.1]
learning_rate = [0.25]
radius = [0.35, 0.6]
"""


def test_sigkill_loses_at_most_the_chunk_in_flight(tmp_path):
    config_path = tmp_path / "sweep.toml"
    config_path.write_text(CONFIG_TOML)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "flatjax.cli._main", "sweep", str(config_path),
        "--out", str(out), "--chunk-size", "8", "--no-progress",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        done = list((out / "chunks").glob("*[0-9].parquet")) if out.exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    survivors = {
        p: p.stat().st_mtime_ns for p in (out / "chunks").glob("*[0-9].parquet")
    }
    assert 3 <= len(survivors) < 16, "the sweep should be killed mid-way"
    assert not (out / "runs.parquet").exists()
    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    for path, mtime in survivors.items():
        assert path.stat().st_mtime_ns == mtime  # finished chunks were not recomputed
    log = (out / "log.txt").read_text().splitlines()
    assert len(log) == len(set(log)) == 16  # every chunk computed exactly once
    uninterrupted = run_sweep(SweepConfig.from_toml(config_path), chunk_size="all").runs
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "runs.parquet"), uninterrupted, check_exact=True
    )


def test_memory_budget_picks_a_chunk_and_refuses_too_small_a_budget():
    config = small_config()
    runs = run_sweep(config, memory_budget=10**9).runs
    assert len(runs) == 100
    with pytest.raises(ValueError, match="smaller than one block of 8 runs"):
        run_sweep(config, memory_budget=1000)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {
                "grid": {
                    "d": [4],
                    "n": [6],
                    "learning_rate": [0.1],
                    "radius": [0.1],
                    "rhoo": [1],
                }
            },
            "unknown hyperparameter 'rhoo'",
        ),
        (
            {"grid": {"d": [4], "n": [], "learning_rate": [0.1], "radius": [0.1]}},
            "empty list of values for 'n'",
        ),
        (
            {"grid": {"d": [4], "n": [6], "radius": [0.1]}},
            r"needs values for \['learning_rate'\]",
        ),
        ({"seeds": -3}, r"seeds=...\)` must be an int >= 1, got -3"),
        ({"problem": "Nope"}, r"problem=...\)` must be one of"),
        ({"optimizer": "adamw"}, r"optimizer=...\)` must be one of"),
        (
            {"grid": {"d": [4], "n": [6], "learning_rate": [-0.1], "radius": [0.1]}},
            r"sam\(learning_rate=...\)` must be >= 0.0",
        ),
        (
            {"grid": {"d": [4], "n": [0], "learning_rate": [0.1], "radius": [0.1]}},
            r"LeastSquares\(n=...\)` must be >= 1",
        ),
        ({"optimizer": "sa_gd"}, "must name an exact maximizer"),
        (
            {"suffix_starts": (9,)},
            r"suffix_starts=...\)` must be ints in \[1, steps=8\]",
        ),
        ({"record": ("everything",)}, r"record=...\)` must be a non-empty subset"),
    ],
)
def test_bad_configurations_are_refused_before_compute(overrides, match):
    with pytest.raises(ValueError, match=match):
        small_config(**overrides)


def test_bad_run_arguments_are_refused(tmp_path):
    config = small_config()
    with pytest.raises(ValueError, match="chunk_size"):
        run_sweep(config, chunk_size=0)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="not writable"):
        run_sweep(config, blocker / "out")


def test_toml_errors_are_clear(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG_TOML.replace("seeds = 64", "seedz = 64"))
    with pytest.raises(ValueError, match=r"unknown key 'seedz' \(did you mean 'seed'"):
        SweepConfig.from_toml(path)
    path.write_text("[sweep\nproblem=")
    with pytest.raises(ValueError, match="is not valid TOML"):
        SweepConfig.from_toml(path)
    with pytest.raises(ValueError, match="does not exist"):
        SweepConfig.from_toml(tmp_path / "missing.toml")


def test_example_configs_parse():
    for path in sorted((REPO / "examples" / "sweeps").glob("*.toml")):
        SweepConfig.from_toml(path)


def test_curves_are_recorded_subsampled():
    config = small_config(record=("suffix", "curves"), curve_every=3, seeds=4)
    result = run_sweep(config)
    assert result.curves is not None
    assert sorted(result.curves["step"].unique()) == [1, 4, 7]
    assert len(result.curves) == 8 * 3


# ------------------------------------------------------------------------------
# Leave-one-out stability.


def test_loo_stability_matches_a_direct_computation():
    problem = LeastSquares(d=3, n=8)
    S = problem.sample(jax.random.key(5))
    result = loo_stability(problem, gd(0.5), S, 20)

    def average(training_set):
        return run(problem, gd(0.5), training_set, 20, record_population=False).average

    full = average(S)
    # For least squares the zero example (x, y) = (0, 0) is a null example.
    direct = [float(((average(S.at[i].set(0.0)) - full) ** 2).sum()) for i in range(8)]
    np.testing.assert_allclose(result.per_example, direct, rtol=1e-10, atol=1e-18)
    assert float(result.epsilon) == pytest.approx(np.mean(direct), rel=1e-10)
    assert float(result.epsilon) > 0


def test_loo_stability_is_zero_when_the_examples_do_not_move_the_algorithm():
    # SAMSharp: all examples are equal and GD from 0 has gradient 0 on S and on
    # every S^(i): outputs coincide exactly.
    problem = SAMSharp(n=5)
    result = loo_stability(problem, gd(0.5), problem.sample(None), 10)
    assert float(result.epsilon) == 0.0
