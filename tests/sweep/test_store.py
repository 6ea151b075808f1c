"""The result store: locked, verified chunk by chunk, never written through a link.

Each test plants one fault a user or a crash can cause and checks that the final
table is still exactly the clean run's (or that the sweep is refused before it
starts), and that the fault is named where it was found.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flatjax.cli import main
from flatjax.sweep import SweepConfig, run_sweep

REPO = Path(__file__).resolve().parents[2]
COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, seconds, **kwargs: (
        COMPILES.append(event)
        if event == "/jax/core/compile/backend_compile_duration"
        else None
    )
)


SMALL_TOML = """
[sweep]
problem = "LeastSquares"
optimizer = "sam"
seeds = 50
steps = 8
block_size = 8

[grid]
d = [4]
n = [6]
learning_rate = [0.25, 0.5]
radius = [0.05]
"""


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


def runs_chunks(out):
    return sorted((out / "chunks").glob("*[0-9].parquet"))


def log_lines(out, word):
    return [line for line in (out / "log.txt").read_text().splitlines() if word in line]


@pytest.fixture(scope="module")
def clean():
    return run_sweep(small_config(), chunk_size=16).runs


def test_copied_and_altered_chunks_are_detected_and_recomputed(tmp_path, clean):
    config = small_config()
    run_sweep(config, tmp_path, chunk_size=16)
    chunks = runs_chunks(tmp_path)
    assert len(chunks) == 7
    # 1. A chunk copied over another (a valid file, in the wrong slot).
    chunks[1].write_bytes(chunks[0].read_bytes())
    # 2. A hyperparameter changed, metadata (and its checksum) kept as written.
    table = pq.read_table(chunks[2])
    rates = table.column("learning_rate").to_pylist()
    rates[0] += 0.125
    index = table.schema.get_field_index("learning_rate")
    table = table.set_column(index, "learning_rate", pa.array(rates))
    pq.write_table(table.replace_schema_metadata(table.schema.metadata), chunks[2])
    # 3. Another sweep's chunk, under this sweep's name.
    other = tmp_path / "other"
    run_sweep(small_config(seed=1), other, chunk_size=16)
    chunks[3].write_bytes(runs_chunks(other)[3].read_bytes())
    again = run_sweep(config, tmp_path, chunk_size=16).runs
    pd.testing.assert_frame_equal(again, clean, check_exact=True)
    rejected = "\n".join(log_lines(tmp_path, "rejected"))
    assert "written for another slot" in rejected
    assert "checksum mismatch" in rejected
    assert "another sweep's fingerprint" in rejected
    assert len(log_lines(tmp_path, "computed")) == 7 + 3


@pytest.mark.parametrize("position", [0.2, 0.35, 0.5, 0.65, 0.8, 0.95])
def test_a_flipped_bit_never_reaches_the_table(tmp_path, clean, position):
    config = small_config()
    run_sweep(config, tmp_path, chunk_size=16)
    chunk = runs_chunks(tmp_path)[4]
    payload = bytearray(chunk.read_bytes())
    payload[int(position * len(payload))] ^= 0x10
    chunk.write_bytes(bytes(payload))
    again = run_sweep(config, tmp_path, chunk_size=16).runs
    pd.testing.assert_frame_equal(again, clean, check_exact=True)


def test_a_second_sweep_on_the_folder_is_refused_and_a_killed_ones_lock_recovered(
    tmp_path, clean
):
    config = small_config()
    config_path = tmp_path / "sweep.toml"
    config_path.write_text(SMALL_TOML)
    assert SweepConfig.from_toml(config_path) == config
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "flatjax.cli._main", "sweep", str(config_path),
        "--out", str(out), "--chunk-size", "8", "--no-progress",
    ]  # fmt: skip
    holder = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "sweep.lock.holder").exists():
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.01)
        with pytest.raises(
            ValueError, match=rf"in use by another sweep \(host .*, pid {holder.pid}"
        ):
            run_sweep(config, out, chunk_size=8)
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    # The killed sweep's lock is released by the OS; this one resumes and finishes.
    again = run_sweep(config, out, chunk_size=8).runs
    pd.testing.assert_frame_equal(again, clean, check_exact=True)
    assert not (out / "sweep.lock.holder").exists()


def test_curves_sweeps_resume(tmp_path):
    config = small_config(record=("suffix", "curves"), curve_every=3, seeds=20)
    first = run_sweep(config, tmp_path, chunk_size=8)
    chunks = runs_chunks(tmp_path)
    assert len(chunks) == 5
    chunks[0].unlink()  # a run killed before this chunk was committed
    Path(str(chunks[2]).replace(".parquet", ".curves.parquet")).unlink()
    again = run_sweep(config, tmp_path, chunk_size=8)
    pd.testing.assert_frame_equal(again.runs, first.runs, check_exact=True)
    pd.testing.assert_frame_equal(again.curves, first.curves, check_exact=True)
    assert "its curves chunk: not a regular file" in "\n".join(
        log_lines(tmp_path, "rejected")
    )
    assert len(log_lines(tmp_path, "computed")) == 5 + 2
    third = run_sweep(config, tmp_path, chunk_size=8)  # nothing to recompute
    assert len(log_lines(tmp_path, "computed")) == 7
    pd.testing.assert_frame_equal(third.curves, first.curves, check_exact=True)


def test_temporary_files_are_cleaned_and_symlinks_never_written_through(
    tmp_path, clean
):
    config = small_config()
    out = tmp_path / "out"
    run_sweep(config, out, chunk_size=16)
    leftovers = [
        out / ".runs.parquet.abc.tmp",
        out / "chunks" / ".g0000_r000000000-000000016.parquet.xyz.tmp",
    ]
    for path in leftovers:
        path.write_text("partial")
    run_sweep(config, out, chunk_size=16)
    assert not any(path.exists() for path in leftovers)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    for name in ("log.txt", "runs.parquet"):
        (out / name).unlink()
        (out / name).symlink_to(victim)
        with pytest.raises(ValueError, match=f"'{name}' is a symlink"):
            run_sweep(config, out, chunk_size=16)
        assert victim.read_text() == "keep me"
        (out / name).unlink()
    assert run_sweep(config, out, chunk_size=16).runs.equals(clean)


def test_unusable_output_folders_are_refused(tmp_path, capsys):
    config = small_config()
    with pytest.raises(ValueError, match=r"`run_sweep\(out=...\)` must name a folder"):
        run_sweep(config, "")
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("...")
    with pytest.raises(ValueError, match="is not empty and holds no sweep"):
        run_sweep(config, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]
    config_path = tmp_path / "sweep.toml"
    config_path.write_text(SMALL_TOML)
    assert main(["sweep", str(config_path), "--out", ""]) == 2
    assert "must name a folder" in capsys.readouterr().err


CORRUPT_RECORDS = {
    "not JSON": (b"{not json", r"JSONDecodeError: Expecting property name"),
    "not UTF-8": (b"\xff\xfe\x00", r"UnicodeDecodeError: 'utf-8' codec"),
    "a list": (b"[1, 2]", r"a JSON list, not an object"),
    "no fingerprint": (b'{"config": {}}', r"no string 'fingerprint' field"),
    "empty": (b"", r"JSONDecodeError: Expecting value"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT_RECORDS))
def test_corrupt_sweep_json_is_named_with_its_fault(kind, tmp_path):
    payload, fault = CORRUPT_RECORDS[kind]
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_bytes(payload)
    record = str(out / "sweep.json")
    with pytest.raises(
        ValueError, match=rf"{re.escape(repr(record))} is corrupt \({fault}"
    ):
        run_sweep(small_config(), out, progress=False)
    assert (out / "sweep.json").read_bytes() == payload  # never overwritten


def test_sizes_that_cannot_fit_are_refused_before_any_compilation(tmp_path):
    too_many_runs = small_config(seeds=10**10 // 2)
    too_large_tables = small_config(
        seeds=10**6, steps=10**4, record=("suffix", "curves")
    )
    small = small_config()
    large = small_config(seeds=10**5)
    COMPILES.clear()
    with pytest.raises(ValueError, match=r"10,000,000,000 runs per group .* exceed"):
        run_sweep(too_many_runs, tmp_path / "a")
    with pytest.raises(ValueError, match=r"result tables of .* runs need at least"):
        run_sweep(too_large_tables, tmp_path / "b")
    with pytest.raises(ValueError, match="smaller than one block of 8 runs"):
        run_sweep(small, memory_budget=100)
    with pytest.raises(ValueError, match=r"`run_sweep\(chunk_size=...\)`: 'all' puts"):
        run_sweep(large, chunk_size="all", memory_budget=10**6)
    assert COMPILES == []
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_same_group_is_compiled_once_per_process(tmp_path):
    config = small_config(
        seeds=24, grid={"d": [5], "n": [6], "learning_rate": [0.3], "radius": [0.1]}
    )
    COMPILES.clear()
    first = run_sweep(config, chunk_size=8).runs
    assert len(COMPILES) >= 1
    COMPILES.clear()
    again = run_sweep(config, chunk_size=8).runs
    other_seed = run_sweep(
        small_config(**{**config.to_dict(), "seed": 3}), tmp_path, chunk_size=8
    ).runs
    assert COMPILES == []
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert not other_seed["final_iterate_norm"].equals(first["final_iterate_norm"])


def test_a_folder_replaced_under_a_running_sweep_is_not_written(tmp_path, monkeypatch):
    import shutil

    import flatjax.sweep._store as store_module

    out = tmp_path / "out"
    original = store_module.Store.write
    calls = []

    def write_then_replace(self, *args):
        original(self, *args)
        calls.append(args[:3])
        if len(calls) == 1:  # a user deletes and recreates the folder mid-sweep
            shutil.rmtree(out)
            out.mkdir()

    monkeypatch.setattr(store_module.Store, "write", write_then_replace)
    with pytest.raises(RuntimeError, match="was deleted or replaced"):
        run_sweep(small_config(), out, chunk_size=16)
    assert list(out.iterdir()) == []
