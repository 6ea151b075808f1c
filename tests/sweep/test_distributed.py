"""Two processes on localhost (jax.distributed, gloo): the single-process table.

Each process is the ``flatjax sweep`` command with one CPU device; the pair is
started with a fresh coordinator port, every wait has a timeout, and every process
is killed (its whole session) when a test ends, so nothing can hang CI.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from flatjax.cli import main
from flatjax.sweep import SweepConfig, run_sweep

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 240  # seconds for one launch of the pair, far above its ~20 s

CONFIG_TOML = """
[sweep]
problem = "LeastSquares"
optimizer = "sam"
seeds = 48
steps = 8
block_size = 4

[grid]
d = [4]
n = [6]
learning_rate = [0.25]
radius = [0.05, 0.1]
"""
CHUNKS = 12  # 96 runs in chunks of 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(config_path, out, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "JAX_PLATFORMS": "cpu",
        # The pairs share one compilation cache (the program is the same).
        "XDG_CACHE_HOME": str(config_path.parent / "cache"),
    }
    processes = []
    for index in range(2):
        command = [
            sys.executable, "-m", "flatjax.cli._main", "sweep", str(config_path),
            "--out", str(out), "--chunk-size", "8", "--no-progress",
            "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
            "--process-id", str(index),
        ]  # fmt: skip
        log = open(tmp_path / f"process{index}-{port}.log", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return processes


def kill(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture
def pairs():
    started = []
    yield started
    for process in started:
        kill(process)


def wait(processes, tmp_path):
    deadline = time.monotonic() + TIMEOUT
    for process in processes:
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("process*.log")))
    codes = [p.poll() for p in processes]
    assert codes == [0, 0], f"exit codes {codes}\n{logs[-4000:]}"


def committed(out):
    return sorted((out / "chunks").glob("*[0-9].parquet")) if out.exists() else []


@pytest.fixture(scope="module")
def single_process_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "sweep.toml"
    path.write_text(CONFIG_TOML)
    return path, run_sweep(SweepConfig.from_toml(path), chunk_size="all").runs


def test_two_processes_give_the_single_process_table(
    single_process_table, tmp_path, pairs
):
    config_path, expected = single_process_table
    out = tmp_path / "out"
    processes = launch(config_path, out, tmp_path)
    pairs += processes
    wait(processes, tmp_path)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "runs.parquet"), expected, check_exact=True
    )
    assert len(committed(out)) == CHUNKS
    metadata = (out / "metadata.json").read_text()
    assert '"process_count": 2' in metadata


@pytest.mark.parametrize("victim", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_a_killed_process_is_resumed_without_recomputing(
    single_process_table, tmp_path, pairs, victim
):
    config_path, expected = single_process_table
    out = tmp_path / "out"
    processes = launch(config_path, out, tmp_path)
    pairs += processes
    deadline = time.monotonic() + TIMEOUT
    while len(committed(out)) < 3 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in processes), "the pair ended early"
        time.sleep(0.02)
    kill(processes[victim])
    # The survivor stops on the broken collective (or is killed): restart both.
    kill(processes[1 - victim])
    survivors = {p: p.stat().st_mtime_ns for p in committed(out)}
    assert 3 <= len(survivors) < CHUNKS, "the pair should be killed mid-way"
    assert not (out / "runs.parquet").exists()
    processes = launch(config_path, out, tmp_path)
    pairs += processes
    wait(processes, tmp_path)
    for path, mtime in survivors.items():
        assert path.stat().st_mtime_ns == mtime  # finished chunks were kept
    log = (out / "log.txt").read_text().splitlines()
    # Every chunk computed once (a kill between a chunk's rename and its log line
    # may leave one unlogged).
    assert len(log) == len(set(log)) and CHUNKS - 1 <= len(log) <= CHUNKS
    assert len(committed(out)) == CHUNKS
    assert not list(out.rglob("*.tmp"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "runs.parquet"), expected, check_exact=True
    )


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--coordinator", "localhost"], r"coordinator_address=...\)` must be"),
        (["--num-processes", "0"], r"num_processes=...\)` must be >= 1, got 0"),
        (
            ["--num-processes", "2", "--process-id", "2"],
            r"process_id=...\)` must be < num_processes=2, got 2",
        ),
    ],
)
def test_bad_distributed_flags_are_refused_before_jax_starts(
    single_process_table, tmp_path, capsys, flags, match
):
    config_path, _ = single_process_table
    command = ["sweep", str(config_path), "--out", str(tmp_path / "out"), *flags]
    assert main(command) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
