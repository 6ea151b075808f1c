"""Shared benchmark machinery: timing, environment, tables, JSON.

Every script enables float64 before importing anything that creates arrays, times
after a warm-up call with ``jax.block_until_ready``, reports the median, min and max
of the repeats, and writes one JSON file with the device, versions and sizes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

# NumPy baselines run with one BLAS thread: OpenBLAS's thread pool makes the small
# operations of a per-seed loop 10-60x slower on a 2-core VM, which would inflate
# every ratio against NumPy. Set before NumPy loads (threadpoolctl also limits it
# at run time, and the JSON records what NumPy runs).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from flatjax.sweep import use_cpu_cores  # noqa: E402

# One XLA host device per core, so that flatjax's sharded methods use every core
# (as `flatjax sweep` does). A user's own XLA_FLAGS setting wins.
use_cpu_cores()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

try:
    import threadpoolctl  # noqa: E402

    _BLAS_LIMIT = threadpoolctl.threadpool_limits(1)
except ImportError:  # the environment variables above still apply
    threadpoolctl = None

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(
    name: str,
    description: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
):
    """The flags every benchmark script takes: ``--smoke``, ``--out``, ``--repeats``.

    ``extra(parser)`` adds a script's own flags.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, one repeat: checks that the script runs (CI), no timings "
        "worth reading",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR / f"{name}.json",
        help=f"JSON output path (default benchmarks/results/{name}.json)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per measurement"
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def block(tree: Any) -> Any:
    """Wait for every array in ``tree`` (``jax.block_until_ready``)."""
    return jax.block_until_ready(tree)


def time_call(
    fn: Callable[[], Any], *, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Seconds per call of ``fn()`` after ``warmup`` untimed calls.

    ``fn`` must return what it computed so that the result can be blocked on; a
    NumPy function is timed the same way (blocking is then a no-op).

    Returns:
        ``{"median_s", "min_s", "max_s", "repeats"}``.
    """
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": repeats,
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn()`` once, block on it, and return ``(result, seconds)``."""
    start = time.perf_counter()
    out = block(fn())
    return out, time.perf_counter() - start


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Device, host and versions, for the JSON header."""
    device = jax.devices()[0]
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": {
            name: _version(name)
            for name in ("jax", "jaxlib", "optax", "equinox", "numpy", "flatjax")
        },
        "x64": bool(jax.config.read("jax_enable_x64")),
        "dtype": "float64",
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "blas": threadpoolctl.threadpool_info() if threadpoolctl else None,
        "load_average": os.getloadavg(),
    }


def reset_peak_memory() -> None:
    """Reset the kernel's peak-RSS counter (Linux ``clear_refs``), where allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status_kib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory() -> dict[str, float | None]:
    """Peak host memory (MiB) since ``reset_peak_memory`` and peak device memory.

    ``host_peak_rss_mib`` is ``VmHWM`` (reset by ``reset_peak_memory``) where
    /proc is readable, else the process's ``ru_maxrss``; ``device_peak_mib`` is
    the device's ``peak_bytes_in_use`` where the backend reports it (GPU), a
    process-lifetime peak.
    """
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hwm = _status_kib("VmHWM")
    device_peak = None
    stats = getattr(jax.devices()[0], "memory_stats", lambda: None)()
    if stats and "peak_bytes_in_use" in stats:
        device_peak = stats["peak_bytes_in_use"] / 2**20
    return {
        "host_peak_rss_mib": hwm / 1024 if hwm is not None else process_peak,
        "process_peak_rss_mib": process_peak,
        "device_peak_mib": device_peak,
    }


def format_number(value: Any) -> str:
    """Human-readable cell: thousands separators, 3 significant digits for floats."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}" if abs(value) < 1e-3 else f"{value:,.0f}"
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub markdown table of ``rows`` restricted to ``columns``."""
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append(
            "| " + " | ".join(format_number(row.get(c)) for c in columns) + " |"
        )
    return "\n".join(lines)


TARGET_COLUMNS = ("target", "measured", "goal", "passed")


def finish(out: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Print ``payload["targets"]`` as a table, write ``payload`` to ``out``; return it.

    The common end of every benchmark script's ``main``.
    """
    print("\n### Targets\n")
    print(markdown_table(payload["targets"], TARGET_COLUMNS))
    write_json(out, payload)
    print(f"\nwrote {out}")
    return payload


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=_jsonable)
        f.write("\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
