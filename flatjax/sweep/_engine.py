"""Execute a sweep: fixed-width vmapped blocks, chunks sized to a memory budget,
sharded over devices, persisted chunk by chunk, resumable.
"""  # noqa: D205

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..optim import ALGORITHMS
from ..runner import run_fused
from ._config import (
    MAXIMIZERS,
    PROBLEMS,
    SweepConfig,
    build_problem,
    static_groups,
    traced_points,
)

_DEFAULT_BUDGET_FRACTION = 0.25


class SweepResult(NamedTuple):
    """The tidy tables of a sweep.

    Attributes:
        runs: one row per run: ``group``, ``run``, ``point``, ``seed_index``, one
            column per hyperparameter, one per recorded metric (``<metric>_tau<τ>``
            for suffix averages, ``final_<metric>`` for the last iterate), and the
            flags ``nonfinite`` (a NaN/Inf appeared; ``nonfinite_step`` says where)
            and ``projection_acted``.
        curves: long format (``group``, ``run``, ``step``, one column per metric),
            or None when curves were not recorded.
    """

    runs: object
    curves: object | None


def use_cpu_cores() -> str:
    """Ask XLA for one host (CPU) device per core, so sweeps shard over every core.

    Sets ``--xla_force_host_platform_device_count=<cores>`` in ``XLA_FLAGS`` unless
    that flag is already there (a user's own setting wins). XLA reads it when its
    backend starts, so call this before the first JAX operation of the process
    (importing ``flatjax`` or ``jax`` is fine); the ``flatjax`` command does. It
    changes nothing on a GPU backend's devices.

    Returns:
        The resulting ``XLA_FLAGS``.

    Raises:
        RuntimeError: if JAX's backends have started already (the flag would be
            ignored silently).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return flags
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "use_cpu_cores() must run before JAX's first operation: its backends "
            "have started, so XLA_FLAGS would be ignored"
        )
    flags = f"{flags} --xla_force_host_platform_device_count={os.cpu_count() or 1}"
    os.environ["XLA_FLAGS"] = flags.strip()
    return os.environ["XLA_FLAGS"]


def default_memory_budget(device=None) -> int:
    """A quarter of the device memory (GPU: its limit; CPU: physical RAM), in bytes."""
    device = device or jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        total = int(stats["bytes_limit"])
    else:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(total * _DEFAULT_BUDGET_FRACTION)


def _versions() -> dict[str, str]:
    import equinox
    import optax

    from .. import __version__

    return {
        "flatjax": __version__,
        "jax": jax.__version__,
        "optax": optax.__version__,
        "equinox": equinox.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _suffix_starts(config: SweepConfig, steps: int) -> tuple[int, ...]:
    starts = config.suffix_starts if config.suffix_starts is not None else (1, steps)
    return tuple(sorted({1, *starts}))


def _one_run(config: SweepConfig, group: Mapping, group_key):
    """The traced function of one run: (run index, hyperparameters) -> records."""
    steps = group["steps"]
    starts = _suffix_starts(config, steps)

    def one(run_index, point):
        key = jax.random.fold_in(group_key, run_index)
        sample_key, population_key = jax.random.split(key)
        problem = build_problem(config, group, point)
        if config.conditioned:
            S = problem.sample_conditioned(sample_key)
        else:
            S = problem.sample(sample_key)
        maximizer = None
        if config.maximizer is not None:
            maximizer = MAXIMIZERS[config.problem][config.maximizer](problem, S)
        options = dict(
            suffix_starts=starts,
            record_population=config.population,
            population_every_step="curves" in config.record,
            key=population_key,
            extra_metrics=problem.extra_metrics(S),
        )
        # Every named optimizer (flatjax.optim.ALGORITHMS) goes through run_fused:
        # the problem's fused kernel where it has one, run otherwise.
        hyperparameters = ALGORITHMS[config.optimizer].hyperparameters
        result = run_fused(
            problem,
            config.optimizer,
            S,
            steps,
            learning_rate=point["learning_rate"],
            radius=point["radius"] if "radius" in hyperparameters else 0.0,
            maximizer=maximizer,
            record_saer=maximizer is not None,
            **options,
        )
        record = {
            "nonfinite_step": result.nonfinite_step,
            "projection_acted": result.projection_acted,
        }
        if "suffix" in config.record:
            for name, values in result.suffix_metrics.items():
                for j, tau in enumerate(starts):
                    record[f"{name}_tau{tau}"] = values[j]
        if "final" in config.record:
            for name, values in result.metrics.items():
                record[f"final_{name}"] = values[-1]
        curves = {}
        if "curves" in config.record:
            curves = {
                name: values[:: config.curve_every]
                for name, values in result.metrics.items()
            }
        return record, curves

    return one


def _chunk_program(one, block_size: int, mesh: Mesh):
    """jit(shard_map(lax.map over fixed-width vmapped blocks)).

    Every block has the same width whatever the chunk size or device count, so
    each run is computed by the same program and the results are bit-identical
    across chunkings (XLA-CPU sums a small reduction in an order that depends on
    the batch width, which is why the width is fixed).
    """

    def block(inputs):
        indices, point = inputs
        if block_size == 1:
            return jax.lax.map(lambda args: one(*args), (indices, point))
        return jax.vmap(one)(indices, point)

    def local(indices, point):
        count = indices.shape[0] // block_size
        shaped = jax.tree_util.tree_map(
            lambda x: x.reshape(count, block_size, *x.shape[1:]), (indices, point)
        )
        out = jax.lax.map(block, shaped)
        return jax.tree_util.tree_map(
            lambda x: x.reshape(count * block_size, *x.shape[2:]), out
        )

    sharded = jax.shard_map(
        local, mesh=mesh, in_specs=P("runs"), out_specs=P("runs"), check_vma=False
    )
    return jax.jit(sharded)


def _global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _to_host(tree):
    if jax.process_count() == 1:
        return jax.tree_util.tree_map(np.asarray, tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


class _Store:
    """Atomic chunk files in ``out/chunks``; the sweep's identity in ``sweep.json``."""

    def __init__(self, out: Path, config: SweepConfig, writer: bool):
        self.out = out
        self.chunks = out / "chunks"
        self.fingerprint = config.fingerprint()
        self.writer = writer
        identity = out / "sweep.json"
        try:
            self.chunks.mkdir(parents=True, exist_ok=True)
            probe = out / ".write_probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise ValueError(
                f"sweep output folder {str(out)!r} is not writable: {err}"
            ) from None
        if identity.exists():
            stored = json.loads(identity.read_text())
            if stored.get("fingerprint") != self.fingerprint:
                raise ValueError(
                    f"sweep output folder {str(out)!r} holds a different sweep "
                    f"(fingerprint {stored.get('fingerprint')}, this one "
                    f"{self.fingerprint}); "
                    "results are not mixed: choose another folder or delete it"
                )
        elif writer:
            self._atomic_write(
                identity,
                json.dumps(
                    {"fingerprint": self.fingerprint, "config": config.to_dict()},
                    indent=2,
                ).encode(),
            )

    @staticmethod
    def _atomic_write(path: Path, payload: bytes) -> None:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def chunk_path(self, group: int, start: int, stop: int) -> Path:
        return self.chunks / f"g{group:04d}_r{start:09d}-{stop:09d}.parquet"

    def finished(self, group: int) -> list[tuple[int, int]]:
        """Valid finished chunks of a group; corrupt or partial files are removed."""
        import pyarrow.parquet as pq

        ranges = []
        for path in sorted(self.chunks.glob(f"g{group:04d}_r*.parquet")):
            start, stop = (int(x) for x in path.stem.split("_r")[1].split("-"))
            try:
                table = pq.read_table(path)
                meta = table.schema.metadata or {}
                ok = (
                    meta.get(b"fingerprint", b"").decode() == self.fingerprint
                    and table.num_rows == stop - start
                )
            except Exception:  # noqa: BLE001 - any unreadable file is recomputed
                ok = False
            if ok:
                ranges.append((start, stop))
            elif self.writer:
                path.unlink(missing_ok=True)
        return ranges

    def write(self, group: int, start: int, stop: int, runs, curves) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        def encode(frame):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata(
                {
                    **(table.schema.metadata or {}),
                    b"fingerprint": self.fingerprint.encode(),
                }
            )
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            return sink.getvalue().to_pybytes()

        if not self.writer:
            return
        if curves is not None:
            self._atomic_write(
                self.chunk_path(group, start, stop).with_suffix(".curves.parquet"),
                encode(curves),
            )
        self._atomic_write(self.chunk_path(group, start, stop), encode(runs))
        with open(self.out / "log.txt", "a") as log:
            log.write(f"computed group {group} runs {start}-{stop}\n")

    def read_group(self, group: int):
        import pandas as pd

        paths = sorted(self.chunks.glob(f"g{group:04d}_r*[0-9].parquet"))
        runs = [pd.read_parquet(p) for p in paths]
        curve_paths = [p.with_suffix(".curves.parquet") for p in paths]
        curves = [pd.read_parquet(p) for p in curve_paths if p.exists()]
        return runs, curves


def _uncovered(total: int, finished: list[tuple[int, int]], chunk: int):
    """Contiguous ranges of at most ``chunk`` runs not in ``finished``."""
    covered = np.zeros(total, bool)
    for start, stop in finished:
        covered[start:stop] = True
    ranges, start = [], None
    for i in range(total + 1):
        if i < total and not covered[i]:
            if start is None:
                start = i
            if i + 1 - start == chunk:
                ranges.append((start, i + 1))
                start = None
        elif start is not None:
            ranges.append((start, i))
            start = None
    return ranges


def _round_up(x: int, unit: int) -> int:
    return unit * math.ceil(x / unit)


def run_sweep(
    config: SweepConfig,
    out: str | Path | None = None,
    *,
    memory_budget: int | None = None,
    chunk_size: int | str | None = None,
    progress: bool | None = None,
    devices=None,
) -> SweepResult:
    r"""Run a sweep: every group compiled once, its runs vmapped, chunked, sharded.

    Runs of a group are processed in chunks. Each chunk is one call of
    ``jit(shard_map(...))`` over a 1-D mesh of ``devices`` (default: all devices),
    inside which each device maps sequentially over fixed-width ``vmap`` blocks of
    ``config.block_size`` runs. A run's key derives from (``config.seed``, group,
    run index) only, so results are bit-identical whatever the chunk size, device
    count or resume point.

    Memory: the chunk program is compiled and XLA's own memory analysis
    (arguments + outputs + temporaries) gives its peak per device; blocks run one
    after another, so a chunk needs one block's temporaries plus the inputs and
    outputs of its runs. Without ``chunk_size``, the chunk starts at all runs and
    shrinks (in multiples of ``devices × block_size``) until that estimate is under
    ``memory_budget`` (default: a quarter of the device's memory); a budget below
    one block is an error.

    Persistence (when ``out`` is given): ``sweep.json`` records the configuration's
    fingerprint; each finished chunk is written atomically (temporary file, fsync,
    rename) as Parquet; a re-run skips finished chunks, recomputes corrupt or partial
    ones, and refuses a folder holding a different configuration. At the end,
    ``runs.parquet`` (and ``curves.parquet``) and ``metadata.json`` (configuration,
    versions, devices, elapsed time) are written.

    Args:
        config: the sweep.
        out: output folder, or None to keep results in memory only.
        memory_budget: bytes per device for a chunk.
        chunk_size: runs per chunk (rounded up to a multiple of devices × block
            size), ``"all"``, or None to derive it from ``memory_budget``.
        progress: show a progress bar over runs (default: when stderr is a TTY).
        devices: the devices of the mesh (default ``jax.devices()``).

    Returns:
        A ``SweepResult`` of pandas DataFrames.

    Raises:
        ValueError: a bad ``chunk_size`` or ``memory_budget`` (including one smaller
            than a block of runs), or an unusable output folder, before compute.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    started = time.perf_counter()
    devices = list(devices) if devices is not None else jax.devices()
    mesh = Mesh(np.array(devices), ("runs",))
    sharding = NamedSharding(mesh, P("runs"))
    unit = len(devices) * config.block_size
    if memory_budget is not None and (
        isinstance(memory_budget, bool)
        or not isinstance(memory_budget, int)
        or memory_budget < 1
    ):
        raise ValueError(
            "`run_sweep(memory_budget=...)` must be a positive int, got "
            f"{memory_budget!r}"
        )
    if (
        chunk_size is not None
        and chunk_size != "all"
        and (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, int)
            or chunk_size < 1
        )
    ):
        raise ValueError(
            "`run_sweep(chunk_size=...)` must be a positive int or 'all', got "
            f"{chunk_size!r}"
        )
    budget = (
        memory_budget
        if memory_budget is not None
        else default_memory_budget(devices[0])
    )
    writer = jax.process_index() == 0
    store = _Store(Path(out), config, writer) if out is not None else None
    if progress is None:
        progress = sys.stderr.isatty()
    groups = static_groups(config)
    points = traced_points(config)
    point_names = sorted(points[0]) if points else []
    point_table = {n: np.array([p[n] for p in points], np.float64) for n in point_names}
    total = len(points) * config.seeds
    root = jax.random.key(config.seed)
    spec = PROBLEMS[config.problem]

    all_runs, all_curves, compile_seconds = [], [], {}
    bar = tqdm(
        total=total * len(groups), unit="run", disable=not progress, desc="sweep"
    )
    for g, group in enumerate(groups):
        finished = store.finished(g) if store is not None else []
        bar.update(sum(stop - start for start, stop in finished))
        program = _chunk_program(
            _one_run(config, group, jax.random.fold_in(root, g)),
            config.block_size,
            mesh,
        )

        def inputs(indices, size):
            padded = np.concatenate(
                [indices, np.full(size - len(indices), indices[-1])]
            )
            point_index = padded // config.seeds
            host = (
                padded.astype(np.int32),
                {n: v[point_index] for n, v in point_table.items()},
            )
            return jax.tree_util.tree_map(lambda x: _global_array(x, sharding), host)

        if chunk_size == "all":
            size = _round_up(total, unit)
        elif chunk_size is not None:
            size = _round_up(min(chunk_size, total), unit)
        else:
            size = _round_up(total, unit)
        if not _uncovered(total, finished, size):
            continue
        tic = time.perf_counter()
        compiled, size = _compile_within_budget(
            program, inputs, size, unit, total, budget, fixed=chunk_size is not None
        )
        compile_seconds[g] = time.perf_counter() - tic
        ranges = _uncovered(total, finished, size)
        for start, stop in ranges:
            indices = np.arange(start, stop)
            record, curves = _to_host(compiled(*inputs(indices, size)))
            count = stop - start
            frame = _runs_frame(
                config, spec, group, g, indices, point_table, record, count
            )
            curve_frame = (
                _curves_frame(config, g, indices, curves, count) if curves else None
            )
            if store is not None:
                store.write(g, start, stop, frame, curve_frame)
            else:
                all_runs.append(frame)
                if curve_frame is not None:
                    all_curves.append(curve_frame)
            bar.update(count)
    bar.close()
    if store is not None:
        all_runs, all_curves = [], []
        for g in range(len(groups)):
            runs, curves = store.read_group(g)
            all_runs += runs
            all_curves += curves
    runs = pd.concat(all_runs, ignore_index=True).sort_values(
        ["group", "run"], ignore_index=True
    )
    curves = None
    if all_curves:
        curves = pd.concat(all_curves, ignore_index=True).sort_values(
            ["group", "run", "step"], ignore_index=True
        )
    if store is not None and writer:
        store._atomic_write(Path(out) / "runs.parquet", _parquet_bytes(runs))
        if curves is not None:
            store._atomic_write(Path(out) / "curves.parquet", _parquet_bytes(curves))
        metadata = {
            "fingerprint": config.fingerprint(),
            "config": config.to_dict(),
            "versions": _versions(),
            "devices": [str(d) for d in devices],
            "platform": devices[0].platform,
            "process_count": jax.process_count(),
            "memory_budget": budget,
            "compile_seconds": compile_seconds,
            "elapsed_seconds": time.perf_counter() - started,
        }
        store._atomic_write(
            Path(out) / "metadata.json", json.dumps(metadata, indent=2).encode()
        )
    return SweepResult(runs, curves)


def _parquet_bytes(frame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


def _peak_bytes(compiled) -> tuple[int, int]:
    """XLA's peak estimate (arguments + outputs + temporaries) and its I/O part."""
    stats = compiled.memory_analysis()
    io = stats.argument_size_in_bytes + stats.output_size_in_bytes
    return io + stats.temp_size_in_bytes, io


def _compile_within_budget(program, inputs, size, unit, total, budget, *, fixed):
    """Compile the chunk program, shrinking the chunk until XLA's estimate fits.

    Blocks run one after another, so a chunk's peak is one block's temporaries plus
    the inputs and outputs of all its runs: the chunk is shrunk in proportion to
    the I/O part until the estimate is under ``budget``.
    """
    while True:
        compiled = program.lower(*inputs(np.arange(min(size, total)), size)).compile()
        peak, io = _peak_bytes(compiled)
        if peak <= budget or fixed:
            return compiled, size
        if size == unit:
            raise ValueError(
                f"`run_sweep(memory_budget=...)`: {budget:,} bytes is smaller than one "
                f"block of {unit} runs, which needs about {peak:,} bytes; raise the "
                "budget or lower `block_size`"
            )
        per_run = io / size
        fitting = int((budget - (peak - io)) // max(per_run, 1.0))
        size = max(unit, min(size - unit, unit * (fitting // unit)))


def _runs_frame(config, spec, group, g, indices, point_table, record, count):
    import pandas as pd

    columns = {
        "group": np.full(count, g),
        "run": indices,
        "point": indices // config.seeds,
        "seed_index": indices % config.seeds,
    }
    for name in spec.static:
        columns[name] = np.full(count, group[name])
    columns["steps"] = np.full(count, group["steps"])
    for name, values in point_table.items():
        columns[name] = values[indices // config.seeds]
    for name, values in sorted(record.items()):
        columns[name] = np.asarray(values)[:count]
    columns["nonfinite"] = columns["nonfinite_step"] >= 0
    return pd.DataFrame(columns)


def _curves_frame(config, g, indices, curves, count):
    import pandas as pd

    length = next(iter(curves.values())).shape[1]
    steps = 1 + config.curve_every * np.arange(length)
    columns = {
        "group": np.full(count * length, g),
        "run": np.repeat(indices, length),
        "step": np.tile(steps, count),
    }
    for name, values in sorted(curves.items()):
        columns[name] = np.asarray(values)[:count].reshape(-1)
    return pd.DataFrame(columns)
