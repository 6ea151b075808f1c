"""Execute a sweep: fixed-width vmapped blocks, chunks sized to a memory budget,
sharded over devices, persisted chunk by chunk, resumable.
"""  # noqa: D205

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._environment import environment
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
from ._distributed import agree_min, broadcast_bytes, broadcast_json, raise_if_any
from ._store import Store, atomic_write, check_out

if TYPE_CHECKING:  # pandas is imported where the tables are built
    import pandas as pd

_DEFAULT_BUDGET_FRACTION = 0.25
#: A run index is folded into the run's key as 32 bits, and stored as int32.
_RUN_INDEX_LIMIT = 2**31 - 1
#: This process's compiled chunk programs, most recently used last.
_COMPILED: OrderedDict = OrderedDict()
_COMPILED_LIMIT = 64


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

    runs: pd.DataFrame
    curves: pd.DataFrame | None


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
    """A quarter of the device memory (GPU: its limit; CPU: physical RAM), in bytes.

    Args:
        device: a device of this process (default: its first local device).

    Raises:
        ValueError: ``device`` belongs to another process of a distributed job
            (its memory cannot be queried from here).
    """
    device = device or jax.local_devices()[0]
    if device.process_index != jax.process_index():
        raise ValueError(
            "`default_memory_budget(device=...)` must be a device of this process "
            f"(process {jax.process_index()}), got {device} of process "
            f"{device.process_index}"
        )
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        total = int(stats["bytes_limit"])
    else:
        total = _host_memory()
    return int(total * _DEFAULT_BUDGET_FRACTION)


def _host_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _suffix_starts(config: SweepConfig, steps: int) -> tuple[int, ...]:
    starts = config.suffix_starts if config.suffix_starts is not None else (1, steps)
    return tuple(sorted({1, *starts}))


def _one_run(config: SweepConfig, group: Mapping):
    """The traced function of one run: (group key, run index, point) -> records."""
    steps = group["steps"]
    starts = _suffix_starts(config, steps)

    def one(group_key, run_index, point):
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

    def local(key_data, indices, point):
        # The group key is an argument, not a constant, so that one compiled
        # program serves every sweep seed (and every run_sweep call).
        group_key = jax.random.wrap_key_data(key_data)

        def block(inputs):
            indices, point = inputs
            if block_size == 1:
                return jax.lax.map(lambda args: one(group_key, *args), (indices, point))
            return jax.vmap(lambda i, p: one(group_key, i, p))(indices, point)

        count = indices.shape[0] // block_size
        shaped = jax.tree_util.tree_map(
            lambda x: x.reshape(count, block_size, *x.shape[1:]), (indices, point)
        )
        out = jax.lax.map(block, shaped)
        return jax.tree_util.tree_map(
            lambda x: x.reshape(count * block_size, *x.shape[2:]), out
        )

    sharded = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), P("runs"), P("runs")),
        out_specs=P("runs"),
        check_vma=False,
    )
    return jax.jit(sharded)


def _global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _to_host(tree):
    if jax.process_count() == 1:
        return jax.tree_util.tree_map(np.asarray, tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def _uncovered(total: int, finished: list[tuple[int, int]], chunk: int):
    """Contiguous ranges of at most ``chunk`` runs not in ``finished``."""
    ranges, position = [], 0
    for start, stop in [*sorted(finished), (total, total)]:
        while position < start:
            end = min(start, position + chunk)
            ranges.append((position, end))
            position = end
        position = max(position, stop)
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
    ``jit(shard_map(...))`` over a 1-D mesh of ``devices`` (default: all devices,
    of every process), inside which each device maps sequentially over fixed-width
    ``vmap`` blocks of ``config.block_size`` runs. A run's key derives from
    (``config.seed``, group, run index) only, so results are bit-identical whatever
    the chunk size, device count, process count or resume point.

    Pre-flight (before anything is compiled): the run index must fit its 32 bits;
    the result tables' size (runs and curves) must fit in half the host's memory
    and, with ``out``, twice of it on the disk; the inputs and outputs of one block
    of runs must fit the memory budget. Otherwise a ``ValueError`` gives the
    numbers.

    Memory: the chunk program is compiled and XLA's own memory analysis
    (arguments + outputs + temporaries) gives its peak per device; blocks run one
    after another, so a chunk needs one block's temporaries plus the inputs and
    outputs of its runs. Without ``chunk_size``, the chunk starts at what the
    budget allows for inputs and outputs and shrinks (in multiples of
    ``devices × block_size``) until that estimate is under ``memory_budget``
    (default: a quarter of the memory of this process's first mesh device; across
    processes, the smallest).

    Compilation: compiled chunk programs are kept per process (the last 64), keyed
    by everything that shapes them (the configuration without its seed and grid
    values, the group, the chunk size, the devices), so another ``run_sweep`` call
    with the same sizes compiles nothing.

    Persistence (when ``out`` is given): the folder is locked for the sweep
    (``sweep.lock``; a second sweep on it is refused, naming the holder's host and
    pid; a killed sweep's lock is released by the operating system). ``sweep.json``
    records the configuration's fingerprint; each finished chunk is written
    atomically as Parquet with its slot, the fingerprint and a checksum; a re-run
    verifies every chunk and recomputes any that fails, skips the others, and
    refuses a folder holding a different configuration. At the end the table is
    checked to hold every run exactly once, then ``runs.parquet`` (and
    ``curves.parquet``) and ``metadata.json`` (configuration, versions, devices,
    elapsed time) are written.

    Several processes: under an initialized ``jax.distributed`` (see
    ``initialize_distributed``), every process calls ``run_sweep`` with the same
    arguments; the mesh spans all processes' devices, process 0 alone reads and
    writes ``out`` (it need not be on a shared file system), and every process
    returns the same tables. If a process dies, the others stop with an error;
    restarting all of them resumes from the chunks process 0 finished.

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
        ValueError: a bad ``chunk_size``, ``memory_budget`` or ``out``, a sweep too
            large for the run index, memory or disk, a budget smaller than one
            block of runs, a folder that holds another sweep or is in use, or
            whose ``sweep.json`` is corrupt (the message names the file and the
            fault: unreadable, not JSON, not an object, no fingerprint); all before
            compute.
    """
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
    out = check_out(out) if out is not None else None
    writer = jax.process_index() == 0
    if memory_budget is not None:
        budget = memory_budget
    else:
        local = [d for d in devices if d.process_index == jax.process_index()]
        budget = agree_min(default_memory_budget(local[0] if local else None))
    if progress is None:
        progress = sys.stderr.isatty()
    groups = static_groups(config)
    points = traced_points(config)
    point_names = sorted(points[0]) if points else []
    point_table = {n: np.array([p[n] for p in points], np.float64) for n in point_names}
    total = len(points) * config.seeds
    fits = (budget, memory_budget, chunk_size, devices, out, writer, config.block_size)
    # Hopeless sizes are refused from the configuration alone, at once; the
    # others are sized exactly from the traced shapes of one run.
    local_error = _fits(_lower_bound(config, groups, point_names, total), *fits)
    plan = None
    if local_error is None:
        plan = _preflight(config, groups, point_names, total)
        local_error = _fits(plan, *fits)
    store = None
    if local_error is None and out is not None and writer:
        try:
            # float32 and float64 results are never mixed in one folder.
            precision = "" if jax.config.jax_enable_x64 else "-float32"
            store = Store(
                out,
                config.fingerprint() + precision,
                config.to_dict(),
                "curves" in config.record,
            )
        except ValueError as err:
            local_error = str(err)
    raise_if_any(local_error)
    # Imported after the pre-flight, which must answer in well under a second.
    import pandas as pd
    from tqdm.auto import tqdm

    try:
        return _execute(
            config, groups, point_table, total, plan, store, out, devices, mesh,
            sharding, unit, budget, chunk_size, progress, started, pd, tqdm,
        )  # fmt: skip
    finally:
        if store is not None:
            store.close()


def _execute(
    config, groups, point_table, total, plan, store, out, devices, mesh,
    sharding, unit, budget, chunk_size, progress, started, pd, tqdm,
):  # fmt: skip
    writer = jax.process_index() == 0
    finished_all = broadcast_json(
        [
            store.finished(g, total) if store is not None else []
            for g in range(len(groups))
        ]
        if writer
        else None
    )
    root = jax.random.key(config.seed)
    spec = PROBLEMS[config.problem]
    point_names = sorted(point_table)
    replicated = NamedSharding(mesh, P())
    all_runs, all_curves, compile_seconds = [], [], {}
    bar = tqdm(
        total=total * len(groups),
        unit="run",
        disable=not (progress and writer),
        desc="sweep",
    )
    for g, group in enumerate(groups):
        finished = [tuple(r) for r in finished_all[g]]
        bar.update(sum(stop - start for start, stop in finished))
        program = _chunk_program(_one_run(config, group), config.block_size, mesh)
        key_data = np.asarray(jax.random.key_data(jax.random.fold_in(root, g)))

        def inputs(indices, size, key_data=key_data):
            padded = np.concatenate(
                [indices, np.full(size - len(indices), indices[-1])]
            )
            point_index = padded // config.seeds
            host = (
                padded.astype(np.int32),
                {n: v[point_index] for n, v in point_table.items()},
            )
            arrays = jax.tree_util.tree_map(lambda x: _global_array(x, sharding), host)
            return (_global_array(key_data, replicated), *arrays)

        def shapes(size, key_data=key_data):
            index = jax.ShapeDtypeStruct((size,), np.int32, sharding=sharding)
            dtype = jax.dtypes.canonicalize_dtype(np.float64)
            point = {
                n: jax.ShapeDtypeStruct((size,), dtype, sharding=sharding)
                for n in point_names
            }
            key = jax.ShapeDtypeStruct(
                key_data.shape, key_data.dtype, sharding=replicated
            )
            return key, index, point

        if chunk_size == "all":
            size, fixed = _round_up(total, unit), True
        elif chunk_size is not None:
            size, fixed = _round_up(min(chunk_size, total), unit), True
        else:
            size, fixed = plan.initial_size(budget, unit, len(devices), total), False
        if not _uncovered(total, finished, size):
            continue
        tic = time.perf_counter()
        cache_key = _program_key(config, group, point_names, devices)
        compiled, size = _compile_within_budget(
            program, shapes, cache_key, size, unit, budget, fixed=fixed
        )
        compile_seconds[g] = time.perf_counter() - tic
        for start, stop in _uncovered(total, finished, size):
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
                finished.append((start, stop))
            elif out is None:
                all_runs.append(frame)
                if curve_frame is not None:
                    all_curves.append(curve_frame)
            bar.update(count)
        finished_all[g] = sorted(finished)
    bar.close()
    if out is None:
        runs, curves = _assemble(pd, all_runs, all_curves, len(groups), total)
        return SweepResult(runs, curves)
    if store is not None:
        for g in range(len(groups)):
            runs, curves = store.read_group(g, finished_all[g])
            all_runs += runs
            all_curves += curves
        runs, curves = _assemble(pd, all_runs, all_curves, len(groups), total)
        store.write_final(runs, curves)
        metadata = {
            "fingerprint": config.fingerprint(),
            "config": config.to_dict(),
            "environment": environment(),
            "devices": [str(d) for d in devices],
            "platform": devices[0].platform,
            "process_count": jax.process_count(),
            "memory_budget": budget,
            "preflight": plan._asdict(),
            "compile_seconds": compile_seconds,
            "elapsed_seconds": time.perf_counter() - started,
        }
        atomic_write(out / "metadata.json", json.dumps(metadata, indent=2).encode())
    if jax.process_count() == 1:
        return SweepResult(runs, curves)
    # Process 0 holds the tables; the others receive them.
    runs = _parquet_frame(broadcast_bytes(_parquet_array(runs) if writer else None))
    has_curves = broadcast_json(curves is not None if writer else None)
    if has_curves:
        curves = _parquet_frame(
            broadcast_bytes(_parquet_array(curves) if writer else None)
        )
    return SweepResult(runs, curves if has_curves else None)


def _assemble(pd, all_runs, all_curves, group_count, total):
    """The sorted tables, checked to hold every run of every group exactly once.

    Raises:
        RuntimeError: a run is missing or duplicated (a bug or a store changed
            behind the lock's back; nothing is written).
    """
    runs = pd.concat(all_runs, ignore_index=True).sort_values(
        ["group", "run"], ignore_index=True
    )
    expected = group_count * total
    groups = runs["group"].to_numpy()
    indices = runs["run"].to_numpy()
    if not (
        len(runs) == expected
        and np.array_equal(groups, np.repeat(np.arange(group_count), total))
        and np.array_equal(indices, np.tile(np.arange(total), group_count))
    ):
        raise RuntimeError(
            f"the sweep's table does not hold every run exactly once ({len(runs)} "
            f"rows for {group_count} group(s) x {total} runs); nothing was written"
        )
    curves = None
    if all_curves:
        curves = pd.concat(all_curves, ignore_index=True).sort_values(
            ["group", "run", "step"], ignore_index=True
        )
        pairs = curves[["group", "run"]].drop_duplicates()
        if len(pairs) != expected:
            raise RuntimeError(
                f"the sweep's curves cover {len(pairs)} runs, not {expected}; "
                "nothing was written"
            )
    return runs, curves


class _Plan(NamedTuple):
    """The pre-flight estimate of a sweep (recorded in ``metadata.json``)."""

    runs_per_group: int
    groups: int
    runs_table_bytes: int
    curves_table_bytes: int
    device_bytes_per_run: int

    def initial_size(self, budget: int, unit: int, device_count: int, total: int):
        """The largest chunk whose inputs and outputs fit ``budget`` per device."""
        per_device = budget // max(self.device_bytes_per_run, 1)
        size = unit * max(1, per_device * device_count // unit)
        return min(size, _round_up(total, unit))


def _leaf_bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))


def _lower_bound(config, groups, point_names, total) -> _Plan:
    """A plan that underestimates every size, from the configuration alone.

    It needs no tracing, so the sizes that are hopeless are refused at once; the
    exact plan (``_preflight``) follows for the rest.

    Raises:
        ValueError: more runs per group than a 32-bit run index can address.
    """
    if total > _RUN_INDEX_LIMIT:
        raise ValueError(
            f"`run_sweep`: {total:,} runs per group ({total // config.seeds:,} grid "
            f"point(s) x {config.seeds:,} seeds) exceed {_RUN_INDEX_LIMIT:,}, the "
            "range of a run index (32 bits, folded into the run's key); split the "
            "sweep, e.g. over `seed`"
        )
    spec = PROBLEMS[config.problem]
    # At least one metric per suffix start and one final metric; three flags.
    records = 3 + len(_suffix_starts(config, min(g["steps"] for g in groups)))
    records = records + 1 if "final" in config.record else records
    columns = 4 + len(spec.static) + 1 + len(point_names) + records
    lengths = [-(-group["steps"] // config.curve_every) for group in groups]
    return _Plan(
        runs_per_group=total,
        groups=len(groups),
        runs_table_bytes=8 * columns * total * len(groups),
        curves_table_bytes=(
            8 * 4 * total * sum(lengths) if "curves" in config.record else 0
        ),
        device_bytes_per_run=4 + 4 * len(point_names) + 8,
    )


def _preflight(config, groups, point_names, total) -> _Plan:
    """Sizes of the tables and of a run on the device, from shapes only.

    ``jax.eval_shape`` of one run (tracing, no compilation) gives the recorded
    outputs; a run's inputs are its index and hyperparameters.
    """
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    point = {n: jax.ShapeDtypeStruct((), dtype) for n in point_names}
    record, curves = jax.eval_shape(
        _one_run(config, groups[0]),
        jax.eval_shape(lambda: jax.random.key(0)),
        jax.ShapeDtypeStruct((), np.int32),
        point,
    )
    lengths = [-(-group["steps"] // config.curve_every) for group in groups]
    curve_step_bytes = sum(x.dtype.itemsize for x in curves.values())
    device_bytes_per_run = (
        4
        + dtype.itemsize * len(point_names)
        + _leaf_bytes(record)
        + curve_step_bytes * max(lengths)
    )
    spec = PROBLEMS[config.problem]
    # group, run, point, seed_index, the static sizes, steps, the hyperparameters,
    # the records and `nonfinite`, at 8 bytes each.
    columns = 4 + len(spec.static) + 1 + len(point_names) + len(record) + 1
    curve_columns = 3 + len(curves)
    return _Plan(
        runs_per_group=total,
        groups=len(groups),
        runs_table_bytes=8 * columns * total * len(groups),
        curves_table_bytes=(8 * curve_columns * total * sum(lengths) if curves else 0),
        device_bytes_per_run=int(device_bytes_per_run),
    )


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.2f} GiB ({nbytes:,} bytes)"


def _fits(plan, budget, memory_budget, chunk_size, devices, out, writer, block_size):
    """Why the sweep cannot fit this process's memory, disk or budget, or None."""
    table = plan.runs_table_bytes + plan.curves_table_bytes
    runs = plan.runs_per_group * plan.groups
    ram = _host_memory()
    if 2 * table > ram:
        return (
            f"`run_sweep`: the result tables of {runs:,} runs need at least "
            f"{_gib(table)} of memory (runs {_gib(plan.runs_table_bytes)}, curves "
            f"{_gib(plan.curves_table_bytes)}) and as much again to assemble, more "
            f"than this host's {_gib(ram)}; record less (no curves, a larger "
            "`curve_every`) or split the sweep (over `seed` or the grid)"
        )
    if out is not None and writer:
        existing = out
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        if 2 * table > free:
            return (
                f"`run_sweep(out=...)`: the sweep writes at least {_gib(2 * table)} "
                f"(its chunks and the final tables of {runs:,} runs) but "
                f"{str(out)!r} has {_gib(free)} free"
            )
    block = block_size * plan.device_bytes_per_run
    if block > budget:
        return (
            f"`run_sweep(memory_budget=...)`: {budget:,} bytes is smaller than one "
            f"block of {block_size} runs, whose inputs and outputs alone need "
            f"{block:,} bytes; raise the budget or lower `block_size`"
        )
    if chunk_size is not None:
        size = plan.runs_per_group if chunk_size == "all" else chunk_size
        per_device = -(-min(size, plan.runs_per_group) // len(devices))
        need = per_device * plan.device_bytes_per_run
        capacity = (
            memory_budget
            if memory_budget is not None
            else int(budget / _DEFAULT_BUDGET_FRACTION)
        )
        if need > capacity:
            return (
                f"`run_sweep(chunk_size=...)`: {chunk_size!r} puts {per_device:,} "
                f"runs on each device, whose inputs and outputs alone need "
                f"{_gib(need)}, more than the device's {_gib(capacity)}; give a "
                "smaller chunk, or none (it is then sized to the memory budget)"
            )
    return None


def _program_key(config, group, point_names, devices) -> str:
    """Everything that shapes a group's chunk program, except the chunk size."""
    fields = {
        k: v for k, v in config.to_dict().items() if k not in ("seed", "seeds", "grid")
    }
    return json.dumps(
        {
            "config": fields,
            "group": dict(group),
            "points": list(point_names),
            "devices": [d.id for d in devices],
            "x64": bool(jax.config.jax_enable_x64),
            "prng": str(jax.config.jax_default_prng_impl),
        },
        sort_keys=True,
    )


def _compiled(program, shapes, cache_key: str, size: int):
    """The compiled chunk program, from this process's cache when it is there."""
    key = (cache_key, size)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = program.lower(*shapes(size)).compile()
        _COMPILED[key] = compiled
        while len(_COMPILED) > _COMPILED_LIMIT:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key)
    return compiled


def clear_compile_cache() -> int:
    """Forget the chunk programs ``run_sweep`` compiled in this process.

    ``run_sweep`` compiles one program per group of runs and keeps up to 64 of them
    for the life of the process, so a second sweep with the same configuration
    (another seed range, a resumed run) does not compile again. The cache is keyed on
    the sweep's configuration, the devices, x64 and the PRNG implementation, **not**
    on flatjax's code: after a function of flatjax is changed in the same process (a
    monkeypatch, a test planting a fault, ``importlib.reload``), a sweep with an
    unchanged configuration would run the program compiled from the old code. Call
    this first; the next sweep then traces and compiles from the code as it is now.

    JAX keeps caches of its own for functions under ``jax.jit`` (one in
    ``flatjax.optim`` among them); to drop those too, call ``jax.clear_caches()``.

    Returns:
        The number of compiled programs forgotten.

    Examples:
        >>> from flatjax.sweep import clear_compile_cache
        >>> _ = clear_compile_cache()
        >>> clear_compile_cache()
        0
    """
    forgotten = len(_COMPILED)
    _COMPILED.clear()
    return forgotten


def _parquet_array(frame) -> np.ndarray:
    return np.frombuffer(_parquet_bytes(frame), np.uint8)


def _parquet_frame(array: np.ndarray):
    import pandas as pd

    return pd.read_parquet(io.BytesIO(array.tobytes()))


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


def _compile_within_budget(program, shapes, cache_key, size, unit, budget, *, fixed):
    """Compile the chunk program, shrinking the chunk until XLA's estimate fits.

    Blocks run one after another, so a chunk's peak is one block's temporaries plus
    the inputs and outputs of all its runs: the chunk is shrunk in proportion to
    the I/O part until the estimate is under ``budget``.
    """
    while True:
        compiled = _compiled(program, shapes, cache_key, size)
        peak, io_bytes = _peak_bytes(compiled)
        if peak <= budget or fixed:
            return compiled, size
        if size == unit:
            raise ValueError(
                f"`run_sweep(memory_budget=...)`: {budget:,} bytes is smaller than one "
                f"block of {unit} runs, which needs about {peak:,} bytes; raise the "
                "budget or lower `block_size`"
            )
        per_run = io_bytes / size
        fitting = int((budget - (peak - io_bytes)) // max(per_run, 1.0))
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
