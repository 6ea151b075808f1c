"""Achieved throughput against the hardware limit: copy bandwidth and matmul rate.

Measures, in one process, the copy bandwidth of the default device (a large array
copy: NumPy ``copyto`` into a preallocated buffer and a jitted in-place elementwise
pass with the input donated, i.e. a device-to-device copy on a GPU; bytes read plus
bytes written) and its float64 matmul rate. Then times flatjax's vmapped runner
(the ``flatjax_vmap`` method of ``bench_sweep.py``: ``run(..., record_population=False,
suffix_starts=(1,))`` under ``jit`` and ``vmap``) and, on the constructions, its
fused path (``flatjax_fused``: ``run_fused``, sharded over the local devices) on
each algorithm, and reports
achieved/limit under byte models per dataset-step (one update of one run):

- ``minimal``: the iterate read and written once ($16d$ bytes in float64) plus what
  the data model requires: the training set read once per step ($8n2^n$ bytes for the
  constructions, whose gradient needs only per-block sufficient statistics and the
  $n\times2^n$ examples; $8n(d+1)$ for least squares, whose gradient needs every
  example). This is the issues' model, and the SA-GD and SAM targets (>= 50% of
  copy bandwidth for the fused kernels) are stated in it.
- ``two_pass``: ``minimal`` plus one more read of the iterate ($+8d$): SAM and SA-GD
  need a global reduction at $w$ (the gradient norm, the block statistics) before
  the pass that updates it.
- ``runner``: ``two_pass`` plus the running suffix sum that ``run`` keeps for the
  average (read and written, $+16d$).

The achieved bandwidth is (dataset-steps/s) x (bytes per dataset-step); the limit is
the best copy bandwidth measured here. The ``DiagonalQuadratic`` rows run SAM with
the cheapest possible gradient (one elementwise pass) at the constructions' $d$:
they measure what the runner itself costs, an upper bound for any fused gradient.

Usage: ``python benchmarks/bench_roofline.py [--smoke] [--out PATH] [--repeats K]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (first: enables float64)
import bench_sweep  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from flatjax.problems import AbstractProblem, RiskEstimate  # noqa: E402

NAME = "bench_roofline"


class DiagonalQuadratic(AbstractProblem):
    r"""$f(w, z) = \frac12\sum_i z_i w_i^2$: the cheapest gradient, $\bar z\odot w$.

    Not a paper construction: it measures the runner's own cost (the "runner
    floor") at the same $d$ as a construction, since its fused gradient is one
    elementwise pass.
    """

    d_: int = eqx.field(static=True)
    n: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)

    def __init__(self, d: int, n: int = 1):
        self.d_, self.n, self.dtype = d, n, np.dtype(np.float64)

    @property
    def d(self) -> int:
        return self.d_

    @property
    def beta(self) -> float:
        return 2.0

    @property
    def lipschitz(self) -> float:
        return 2.0

    def sample(self, key):
        return jax.random.uniform(key, (self.n, self.d_), self.dtype, 1.0, 2.0)

    def loss(self, w, z):
        return 0.5 * jnp.sum(z * jnp.square(w))

    def population_risk(self, w, key=None, *, num_samples=100_000):
        value = 0.75 * jnp.sum(jnp.square(w))
        return RiskEstimate(value, jnp.zeros_like(value), jnp.asarray(True))

    def initial_point(self):
        return jnp.full((self.d_,), 0.5 / np.sqrt(self.d_), self.dtype)

    def value_and_grad(self, w, S):
        grad = jnp.mean(S, axis=0) * w
        return 0.5 * jnp.sum(w * grad), grad


def floor_case(d: int) -> bench_sweep.Case:
    """SAM on ``DiagonalQuadratic(d)``: the runner floor at dimension ``d``."""
    return bench_sweep.Case(
        problem="DiagonalQuadratic",
        algorithm="sam",
        cls=DiagonalQuadratic,
        static={"d": d, "n": 1},
        hyper={"learning_rate": 0.1, "radius": 0.05},
        hyper_alt={"learning_rate": 0.2, "radius": 0.1},
        steps=64,
        numpy_fn=None,
        optax=False,
        notes="runner floor: a one-pass elementwise gradient",
    )


def copy_bandwidth(nbytes: int, repeats: int) -> dict[str, Any]:
    """Bytes moved per second (read + write) by a large copy, NumPy and JAX."""
    count = nbytes // 8
    source = np.random.default_rng(0).random(count)
    target = np.empty_like(source)
    numpy_timing = _common.time_call(lambda: np.copyto(target, source), repeats=repeats)
    # Donating the input lets XLA write the result in place: no fresh allocation
    # (whose page faults would be timed) and a plain read + write per element.
    scale = jax.jit(lambda x: x * 1.0000000001, donate_argnums=0)
    state = {"x": jnp.asarray(source)}

    def jax_copy():
        state["x"] = scale(state["x"])
        return state["x"]

    jax_timing = _common.time_call(jax_copy, repeats=repeats)
    moved = 2 * count * 8
    out = {
        "array_bytes": count * 8,
        "numpy_copyto": {**numpy_timing, "bytes_per_s": moved / numpy_timing["min_s"]},
        "jax_inplace": {**jax_timing, "bytes_per_s": moved / jax_timing["min_s"]},
    }
    out["limit_bytes_per_s"] = max(
        out["numpy_copyto"]["bytes_per_s"], out["jax_inplace"]["bytes_per_s"]
    )
    return out


def matmul_rate(size: int, repeats: int) -> dict[str, Any]:
    """float64 flop/s of a jitted ``size x size`` matmul."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (size, size), jnp.float64)
    b = jax.random.normal(key_b, (size, size), jnp.float64)
    matmul = jax.jit(jnp.matmul)
    timing = _common.time_call(lambda: matmul(a, b), repeats=repeats)
    return {"size": size, **timing, "flops_per_s": 2 * size**3 / timing["min_s"]}


def byte_models(case: bench_sweep.Case) -> dict[str, int]:
    problem = case.make(case.hyper)
    d, n = problem.d, problem.n
    if case.problem == "LeastSquares":
        data = 8 * n * (d + 1)
    elif case.problem == "DiagonalQuadratic":
        data = 8 * n * d
    else:
        data = 8 * n * 2**n
    minimal = 16 * d + data
    two_pass = minimal + (8 * d if case.algorithm in ("sam", "sa_gd") else 0)
    return {"minimal": minimal, "two_pass": two_pass, "runner": two_pass + 16 * d}


def measure_case(case, method, seeds_options, repeats) -> dict[str, Any]:
    """Best rate of ``method`` (``flatjax_vmap`` or ``flatjax_fused``) over a few
    (seeds, chunk) choices."""  # noqa: D205
    hyper = bench_sweep.as_hyper(case.hyper)
    all_sets = bench_sweep.sample_sets(case, max(s for s, _ in seeds_options))
    if method == "flatjax_fused":
        one, wrap = bench_sweep.fused_one(case), bench_sweep.sharded
    else:
        one, wrap = bench_sweep.flatjax_one(case), bench_sweep.batched
    trials = []
    for seeds, chunk in seeds_options:
        S = all_sets[:seeds]
        fn = wrap(one, seeds, chunk)
        _common.block(fn(S, hyper))
        timing = _common.time_call(lambda fn=fn, S=S: fn(S, hyper), repeats=repeats)
        trials.append(
            {
                "seeds": seeds,
                "chunk": min(chunk, seeds),
                **timing,
                "dataset_steps_per_s": seeds * (case.steps - 1) / timing["median_s"],
                "dataset_steps_per_s_best": seeds * (case.steps - 1) / timing["min_s"],
            }
        )
    return {
        "trials": trials,
        "best": max(trials, key=lambda t: t["dataset_steps_per_s"]),
    }


def cases(smoke: bool):
    """(case, method, [(seeds, chunk), ...]) to measure."""
    if smoke:
        return [
            (bench_sweep.sagdtrap_case(4, 8), "flatjax_vmap", [(2, 2)]),
            (bench_sweep.sagdtrap_case(4, 8), "flatjax_fused", [(2, 2)]),
            (bench_sweep.least_squares_case(16, 8, 8), "flatjax_vmap", [(2, 2)]),
            (floor_case(129), "flatjax_vmap", [(2, 2)]),
        ]
    large = [(1, 1), (2, 2), (4, 4), (16, 4)]
    large_fused = [(2, 1), (4, 2), (16, 1), (16, 2), (16, 4)]
    small = [(1, 1), (16, 16), (128, 16), (128, 128)]
    small_fused = [(16, 1), (128, 4), (128, 8), (128, 16), (128, 64)]
    return [
        (bench_sweep.sagdtrap_case(8, 256), "flatjax_vmap", large),
        (bench_sweep.sagdtrap_case(8, 256), "flatjax_fused", large_fused),
        (bench_sweep.sagdtrap_case(8, 256, "gd"), "flatjax_vmap", large),
        (bench_sweep.sagdtrap_case(8, 256, "gd"), "flatjax_fused", large_fused),
        (bench_sweep.samtrap_case(6, 64), "flatjax_vmap", small),
        (bench_sweep.samtrap_case(6, 64), "flatjax_fused", small_fused),
        (floor_case(4097), "flatjax_vmap", small),
        (bench_sweep.least_squares_case(1024, 64, 64), "flatjax_vmap", small[:3]),
        (floor_case(65537), "flatjax_vmap", large),
    ]


def main(argv=None) -> dict[str, Any]:
    args = _common.parse_args(NAME, __doc__.splitlines()[0], argv)
    smoke = args.smoke
    repeats = args.repeats or (1 if smoke else 5)
    start = time.perf_counter()
    copy = copy_bandwidth(2**23 if smoke else 2**28, max(repeats, 3))
    matmul = matmul_rate(256 if smoke else 2048, max(repeats, 3))
    limit = copy["limit_bytes_per_s"]
    rows = []
    for case, method, seeds_options in cases(smoke):
        measured = measure_case(case, method, seeds_options, repeats)
        best = measured["best"]
        models = byte_models(case)
        row = {
            "label": case.label,
            "method": method,
            "problem": case.problem,
            "algorithm": case.algorithm,
            "sizes": {**case.static, "d": case.make(case.hyper).d, "steps": case.steps},
            "bytes_per_dataset_step": models,
            "dataset_steps_per_s": best["dataset_steps_per_s"],
            "seeds": best["seeds"],
            "chunk": best["chunk"],
            "trials": measured["trials"],
        }
        for model, nbytes in models.items():
            achieved = best["dataset_steps_per_s"] * nbytes
            row[f"achieved_bytes_per_s_{model}"] = achieved
            row[f"fraction_of_copy_{model}"] = achieved / limit
        rows.append(row)
        print(
            f"[{NAME}] {case.label}, {method}: {time.perf_counter() - start:.1f} s",
            flush=True,
        )
    target_rows = []
    for row in rows:
        # Issue 16's roofline targets: SA-GD on SAGDTrap (an earlier issue) and
        # SAM on SAMTrap, both through the fused kernel, in the minimal model.
        if row["method"] == "flatjax_fused" and (
            row["problem"],
            row["algorithm"],
        ) in (("SAGDTrap", "sa_gd"), ("SAMTrap", "sam")):
            fraction = row["fraction_of_copy_minimal"]
            target_rows.append(
                {
                    "target": f"{row['label']}, flatjax_fused: achieved / copy "
                    "bandwidth, minimal bytes",
                    "measured": fraction,
                    "goal": 0.5,
                    "passed": fraction >= 0.5,
                }
            )
    payload = {
        "benchmark": NAME,
        "smoke": smoke,
        "environment": _common.environment(),
        "what_is_timed": __doc__,
        "copy_bandwidth": copy,
        "matmul": matmul,
        "limit_bytes_per_s": limit,
        "algorithms": rows,
        "targets": target_rows,
        "peak_memory": _common.peak_memory(),
    }
    print(
        f"\ncopy bandwidth (read + write): NumPy "
        f"{copy['numpy_copyto']['bytes_per_s'] / 1e9:.1f} GB/s, JAX in place "
        f"{copy['jax_inplace']['bytes_per_s'] / 1e9:.1f} GB/s on "
        f"{copy['array_bytes'] / 2**20:.0f} MiB arrays; float64 matmul "
        f"{matmul['flops_per_s'] / 1e9:.1f} GFLOP/s (n = {matmul['size']})\n"
    )
    table = [
        {
            "algorithm": r["label"],
            "method": r["method"],
            "d": r["sizes"]["d"],
            "datasets": r["seeds"],
            "dataset-steps/s": r["dataset_steps_per_s"],
            "bytes/step (minimal)": r["bytes_per_dataset_step"]["minimal"],
            "GB/s (minimal)": r["achieved_bytes_per_s_minimal"] / 1e9,
            "of copy (minimal)": r["fraction_of_copy_minimal"],
            "of copy (two-pass)": r["fraction_of_copy_two_pass"],
            "of copy (runner)": r["fraction_of_copy_runner"],
        }
        for r in rows
    ]
    print(_common.markdown_table(table, list(table[0])))
    if target_rows:
        print("\n### Targets\n")
        print(
            _common.markdown_table(
                target_rows, ["target", "measured", "goal", "passed"]
            )
        )
    _common.write_json(args.out, payload)
    print(f"\nwrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
