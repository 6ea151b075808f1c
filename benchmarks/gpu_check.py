"""One command for a CUDA machine: check the install, benchmark, run Theorem 3 at scale.

Steps, each recorded in one JSON file (``benchmarks/results/gpu_check.json``):

1. ``install``: the backend JAX picked, its devices, the CUDA plugin's version, and
   a float64 computation on the device compared with NumPy (a GPU build without
   float64 or a CPU-only install fail here, before anything long starts).
2. ``benchmarks``: ``bench_roofline.py`` (the device's copy bandwidth and matmul
   rate, flatjax's achieved bytes/s) and ``bench_sweep.py`` (dataset-steps/s against
   the NumPy and optax baselines), their JSON embedded as they write it; these fill
   the GPU rows of ``benchmarks/README.md`` (with ``--smoke``: the roofline only).
3. ``theorem3_sweep``: ``examples/sweeps/theorem3_sagd.toml`` (SA-GD with the
   paper's adversarial maximizer on ``SAGDTrap``, Theorem 3) with ``--seeds``
   seeds per radius (default 100,000) through ``flatjax.sweep.run_sweep``, sharded
   over every device of the host (several GPUs use the same sharded path as several
   CPU cores): runs/s, compile and wall time, the mean population risk and SAER per
   radius, and the count of non-finite runs.

Usage::

    python benchmarks/gpu_check.py                 # on the GPU machine (~minutes)
    python benchmarks/gpu_check.py --smoke         # tiny sizes, any backend (CI)

Without ``--smoke`` the script refuses to run on a backend other than GPU (exit
status 2), so a CPU-only install cannot pass for a GPU measurement.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets XLA_FLAGS and float64 before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from flatjax._environment import environment, package_version  # noqa: E402
from flatjax.sweep import SweepConfig, run_sweep  # noqa: E402

NAME = "gpu_check"
ROOT = Path(__file__).resolve().parents[1]
THEOREM3 = ROOT / "examples" / "sweeps" / "theorem3_sagd.toml"


def check_install() -> dict[str, Any]:
    """The backend, devices and plugin versions, and a float64 check on the device."""
    x = np.linspace(-1.0, 1.0, 4097)
    expected = float(np.sum(np.sin(x) ** 2 * np.exp(x)))
    on_device = float(jnp.sum(jnp.sin(jnp.asarray(x)) ** 2 * jnp.exp(jnp.asarray(x))))
    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "cuda_plugin": package_version("jax-cuda12-plugin"),
        "cuda_pjrt": package_version("jax-cuda12-pjrt"),
        "float64_on_device": jnp.asarray(x).dtype == jnp.float64,
        "float64_relative_error": abs(on_device - expected) / abs(expected),
    }


def run_benchmarks(smoke: bool, folder: Path) -> dict[str, Any]:
    """``bench_roofline`` and ``bench_sweep``, as their own ``main`` runs them.

    In smoke mode only ``bench_roofline`` runs (``bench_sweep --smoke`` has its own
    CI test; running it twice would only cost CI time).
    """
    import bench_roofline
    import bench_sweep

    modules = {"bench_roofline": bench_roofline}
    if not smoke:
        modules["bench_sweep"] = bench_sweep
    results = {}
    for name, module in modules.items():
        argv = ["--out", str(folder / f"{name}.json")] + (["--smoke"] if smoke else [])
        start = time.perf_counter()
        payload = module.main(argv)
        payload["wall_s"] = time.perf_counter() - start
        results[name] = payload
    return results


def theorem3_sweep(seeds: int, folder: Path) -> dict[str, Any]:
    """Theorem 3's sweep at ``seeds`` seeds per radius, timed end to end."""
    base = SweepConfig.from_toml(THEOREM3)
    config = SweepConfig(**{**base.to_dict(), "seeds": seeds})
    start = time.perf_counter()
    runs = run_sweep(config, folder / "theorem3", progress=False).runs
    wall = time.perf_counter() - start
    metadata = (folder / "theorem3" / "metadata.json").read_text()
    import json

    compile_seconds = sum(json.loads(metadata)["compile_seconds"].values())
    by_radius = runs.groupby("radius")[
        ["population_risk_tau1", "saer_tau1", "nonfinite"]
    ].agg(["mean", "count"])
    per_radius = [
        {
            "radius": float(radius),
            "runs": int(row[("population_risk_tau1", "count")]),
            "mean_population_risk_tau1": float(row[("population_risk_tau1", "mean")]),
            "mean_saer_tau1": float(row[("saer_tau1", "mean")]),
            "nonfinite_fraction": float(row[("nonfinite", "mean")]),
        }
        for radius, row in by_radius.iterrows()
    ]
    return {
        "config": config.to_dict(),
        "runs": len(runs),
        "wall_s": wall,
        "compile_s": compile_seconds,
        "runs_per_s": len(runs) / wall,
        "dataset_steps_per_s": len(runs) * config.grid["T"][0] / wall,
        "device_count": jax.device_count(),
        "nonfinite_runs": int(runs["nonfinite"].sum()),
        "per_radius": per_radius,
    }


def main(argv=None) -> dict[str, Any]:
    """Run the check; returns the JSON payload it wrote."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device")
    parser.add_argument(
        "--out", type=Path, default=_common.RESULTS_DIR / f"{NAME}.json"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="Theorem 3 seeds per radius"
    )
    parser.add_argument(
        "--skip-benchmarks", action="store_true", help="install check and sweep only"
    )
    args = parser.parse_args(argv)
    seeds = args.seeds or (64 if args.smoke else 100_000)
    if not args.smoke and jax.default_backend() != "gpu":
        print(
            f"gpu_check: JAX's backend is {jax.default_backend()!r}, not a GPU; "
            'install the CUDA build (pip install -U "jax[cuda12]") or pass --smoke',
            file=sys.stderr,
        )
        raise SystemExit(2)
    install = check_install()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        benchmarks = {} if args.skip_benchmarks else run_benchmarks(args.smoke, folder)
        sweep = theorem3_sweep(seeds, folder)
    targets = [
        {
            "target": "float64 on the device agrees with NumPy to 1e-12",
            "measured": install["float64_relative_error"],
            "goal": 1e-12,
            "passed": bool(
                install["float64_on_device"]
                and install["float64_relative_error"] < 1e-12
            ),
        },
        {
            "target": f"Theorem 3 sweep of {sweep['runs']:,} runs: no non-finite run",
            "measured": sweep["nonfinite_runs"],
            "goal": 0,
            "passed": sweep["nonfinite_runs"] == 0,
        },
    ]
    payload = {
        "benchmark": NAME,
        "smoke": args.smoke,
        "environment": {**_common.environment(), "flatjax": environment()},
        "install": install,
        "benchmarks": benchmarks,
        "theorem3_sweep": sweep,
        "targets": targets,
    }
    print(f"\n### {NAME}: {install['backend']} ({install['device_kind']})\n")
    print(
        _common.markdown_table(
            [
                {
                    "runs": sweep["runs"],
                    "devices": sweep["device_count"],
                    "wall_s": sweep["wall_s"],
                    "compile_s": sweep["compile_s"],
                    "runs_per_s": sweep["runs_per_s"],
                }
            ],
            ["runs", "devices", "wall_s", "compile_s", "runs_per_s"],
        )
    )
    return _common.finish(args.out, payload)


if __name__ == "__main__":
    main()
