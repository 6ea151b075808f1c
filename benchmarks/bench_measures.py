"""Curvature measures at network scale: HVP cost, probe-chunk memory, compile reuse.

On an equinox MLP (default: 64 -> 1024 -> 1024 -> 10, tanh, 1.13M parameters, a batch
of 256 examples, float64, squared loss), in one process:

- Throughput: one gradient (``jax.jit(jax.grad(loss))``, the strongest baseline a
  user writes) against one Hessian-vector product (the forward-over-reverse product
  ``flatjax.measures`` uses: ``jax.jvp`` of ``jax.grad``, jitted) and against a chunk
  of 16 products (``vmap``, what the estimators evaluate at a time, per product).
  Timed in interleaved rounds (gradient, product, chunk, gradient, ...), each round's
  ratio taken, the median of the ratios reported. Target: one product <= 3
  gradients' time.
- Memory: XLA's ``memory_analysis`` of the compiled programs (arguments + outputs +
  temporaries, bytes): one gradient, and ``hessian_trace`` with 300 Rademacher
  probes in chunks of ``probe_batch`` = 16 (and, for comparison, all 300 at once,
  the behaviour before chunking). Target: the chunked trace <= 4 x one gradient's
  footprint + the chunk's probes (16 x d x 8 bytes).
- Compilation reuse: ``hessian_trace`` called twice outside ``jit`` with new
  parameters; the second call must not recompile: it traces the loss only for the
  argument check (counted by a loss that counts its traces), the first call traces
  it for compilation too.

Usage: ``python benchmarks/bench_measures.py [--smoke] [--out PATH] [--repeats K]``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (first: enables float64)
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from flatjax.measures import DEFAULT_PROBE_MEMORY, hessian_trace  # noqa: E402

NAME = "bench_measures"
PROBE_BATCH = 16


def make_problem(width: int, depth: int, batch: int, in_size: int = 64):
    """An MLP's parameters and its squared loss on a fixed random batch."""
    model_key, x_key, y_key = jax.random.split(jax.random.key(0), 3)
    # tanh, not ReLU: the loss is smooth, so a finite difference of gradients is a
    # valid check of the Hessian-vector product (ReLU kinks break it).
    model = eqx.nn.MLP(in_size, 10, width, depth, activation=jnp.tanh, key=model_key)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), params)
    x = jax.random.normal(x_key, (batch, in_size), jnp.float64)
    y = jax.random.normal(y_key, (batch, 10), jnp.float64)

    def loss(p):
        predictions = jax.vmap(eqx.combine(p, static))(x)
        return 0.5 * jnp.mean(jnp.sum(jnp.square(predictions - y), axis=1))

    return params, loss


def memory_bytes(compiled) -> dict[str, int]:
    """Arguments, outputs, temporaries and their sum from XLA's memory analysis."""
    analysis = compiled.memory_analysis()
    out = {
        "argument_bytes": int(analysis.argument_size_in_bytes),
        "output_bytes": int(analysis.output_size_in_bytes),
        "temp_bytes": int(analysis.temp_size_in_bytes),
    }
    out["total_bytes"] = sum(out.values())
    return out


def interleaved(fns: dict[str, Any], rounds: int, calls: int) -> dict[str, Any]:
    """Seconds per call of each function, rounds interleaved; median ratios."""
    for fn in fns.values():
        _common.block(fn())
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                out = fn()
            _common.block(out)
            times[name].append((time.perf_counter() - start) / calls)
    return times


def main(argv=None) -> dict[str, Any]:
    args = _common.parse_args(NAME, __doc__.splitlines()[0], argv)
    smoke = args.smoke
    rounds = args.repeats or (2 if smoke else 9)
    width, depth, batch = (64, 2, 32) if smoke else (1024, 2, 256)
    num_probes = 30 if smoke else 300
    params, loss = make_problem(width, depth, batch)
    x0, unravel = ravel_pytree(params)
    d = int(x0.shape[0])
    flat_loss = jax.jit(lambda flat: loss(unravel(flat)))
    grad = jax.jit(jax.grad(lambda flat: loss(unravel(flat))))

    @jax.jit
    def hvp(flat, vector):
        return jax.jvp(jax.grad(lambda f: loss(unravel(f))), (flat,), (vector,))[1]

    chunk_hvp = jax.jit(jax.vmap(hvp, in_axes=(None, 0)))
    vector = jax.random.rademacher(jax.random.key(1), (d,), jnp.float64)
    chunk = jax.random.rademacher(jax.random.key(2), (PROBE_BATCH, d), jnp.float64)
    # Agreement: the product equals a finite difference of gradients (central,
    # step 1e-5 relative: error O(h^2) plus roundoff eps/h).
    step = 1e-5
    finite_difference = (grad(x0 + step * vector) - grad(x0 - step * vector)) / (
        2 * step
    )
    product = hvp(x0, vector)
    agreement = float(
        jnp.linalg.norm(product - finite_difference) / jnp.linalg.norm(product)
    )
    chunk_agreement = float(
        jnp.max(jnp.abs(chunk_hvp(x0, chunk[:2])[0] - hvp(x0, chunk[0])))
        / jnp.max(jnp.abs(hvp(x0, chunk[0])))
    )
    times = interleaved(
        {
            "gradient": lambda: grad(x0),
            "hvp": lambda: hvp(x0, vector),
            "hvp_chunk": lambda: chunk_hvp(x0, chunk),
            "loss": lambda: flat_loss(x0),
        },
        rounds,
        calls=1 if smoke else 3,
    )
    hvp_ratios = [h / g for h, g in zip(times["hvp"], times["gradient"], strict=True)]
    chunk_ratios = [
        c / PROBE_BATCH / g
        for c, g in zip(times["hvp_chunk"], times["gradient"], strict=True)
    ]
    throughput = {
        name: {
            "median_s": statistics.median(values),
            "min_s": min(values),
            "max_s": max(values),
            "rounds": len(values),
        }
        for name, values in times.items()
    }
    gradient_s = throughput["gradient"]["median_s"]
    rows = [
        {
            "method": "gradient (jit(grad))",
            "per_s": 1 / gradient_s,
            "median_ms": 1e3 * gradient_s,
            "ratio_to_gradient": 1.0,
        },
        {
            "method": "HVP, one (jvp of grad)",
            "per_s": 1 / throughput["hvp"]["median_s"],
            "median_ms": 1e3 * throughput["hvp"]["median_s"],
            "ratio_to_gradient": statistics.median(hvp_ratios),
        },
        {
            "method": f"HVP, chunk of {PROBE_BATCH} (vmap), per product",
            "per_s": PROBE_BATCH / throughput["hvp_chunk"]["median_s"],
            "median_ms": 1e3 * throughput["hvp_chunk"]["median_s"] / PROBE_BATCH,
            "ratio_to_gradient": statistics.median(chunk_ratios),
        },
    ]

    key = jax.random.key(3)
    gradient_memory = memory_bytes(grad.lower(x0).compile())

    def trace_program(probe_batch):
        def run(p, k):
            return hessian_trace(
                loss, p, key=k, num_probes=num_probes, probe_batch=probe_batch
            )

        return jax.jit(run).lower(params, key).compile()

    compile_start = time.perf_counter()
    chunked_memory = memory_bytes(trace_program(PROBE_BATCH))
    chunked_compile_s = time.perf_counter() - compile_start
    one_at_a_time_memory = memory_bytes(trace_program(1))
    # The default chunk: 8 parameter-sized float64 vectors per probe within
    # DEFAULT_PROBE_MEMORY (what resolve_probe_batch picks without probe_batch).
    default_batch = max(1, min(64, num_probes, DEFAULT_PROBE_MEMORY // (64 * d)))
    default_memory = memory_bytes(trace_program(None))
    all_at_once_memory = memory_bytes(trace_program(num_probes))
    chunk_bytes = PROBE_BATCH * d * 8
    memory_goal = 4 * gradient_memory["total_bytes"] + chunk_bytes
    one_goal = 4 * gradient_memory["total_bytes"] + d * 8
    default_goal = 4 * gradient_memory["total_bytes"] + default_batch * d * 8

    # Compilation reuse outside jit: a second call with new parameters.
    class CountingLoss:
        traces = 0

        def __call__(self, p):
            CountingLoss.traces += 1
            return loss(p)

    counting = CountingLoss()
    first, first_s = _common.timed(
        lambda: hessian_trace(counting, params, key=key, num_probes=PROBE_BATCH)
    )
    first_traces = CountingLoss.traces
    shifted = jax.tree_util.tree_map(lambda leaf: 1.01 * leaf, params)
    second, second_s = _common.timed(
        lambda: hessian_trace(counting, shifted, key=key, num_probes=PROBE_BATCH)
    )
    second_traces = CountingLoss.traces - first_traces
    recompilation = {
        "first_call_s": first_s,
        "second_call_s": second_s,
        "first_call_loss_traces": first_traces,
        "second_call_loss_traces": second_traces,
        "recompiled": second_traces >= first_traces,
        "trace_estimate": float(first.value),
        "trace_stderr": float(first.stderr),
        "second_trace_estimate": float(second.value),
    }
    hvp_ratio = statistics.median(hvp_ratios)
    targets = [
        {
            "target": "one HVP / one gradient, time (median of interleaved rounds)",
            "measured": hvp_ratio,
            "goal": 3.0,
            "passed": hvp_ratio <= 3.0,
        },
        {
            "target": f"hessian_trace, {num_probes} probes in chunks of "
            f"{PROBE_BATCH}: compiled bytes / (4 x gradient + chunk)",
            "measured": chunked_memory["total_bytes"] / memory_goal,
            "goal": 1.0,
            "passed": chunked_memory["total_bytes"] <= memory_goal,
        },
        {
            "target": f"hessian_trace, {num_probes} probes, default chunks of "
            f"{default_batch}: compiled bytes / (4 x gradient + the chunk's probes)",
            "measured": default_memory["total_bytes"] / default_goal,
            "goal": 1.0,
            "passed": default_memory["total_bytes"] <= default_goal,
        },
        {
            "target": f"hessian_trace, {num_probes} probes one at a time: compiled "
            "bytes / (4 x gradient + one probe)",
            "measured": one_at_a_time_memory["total_bytes"] / one_goal,
            "goal": 1.0,
            "passed": one_at_a_time_memory["total_bytes"] <= one_goal,
        },
        {
            "target": "loss traces on a second call outside jit (first call: "
            f"{first_traces})",
            "measured": float(second_traces),
            "goal": 0.0,
            "passed": not recompilation["recompiled"],
        },
    ]
    payload = {
        "benchmark": NAME,
        "smoke": smoke,
        "environment": _common.environment(),
        "what_is_timed": __doc__,
        "sizes": {
            "width": width,
            "depth": depth,
            "batch": batch,
            "parameters": d,
            "num_probes": num_probes,
            "probe_batch": PROBE_BATCH,
        },
        "agreement": {
            "hvp_vs_finite_difference_relative": agreement,
            "chunk_vs_single_relative": chunk_agreement,
        },
        "throughput": throughput,
        "ratios": {"hvp_to_gradient": hvp_ratios, "chunk_to_gradient": chunk_ratios},
        "rows": rows,
        "memory": {
            "gradient": gradient_memory,
            "trace_chunked": chunked_memory,
            "trace_one_at_a_time": one_at_a_time_memory,
            "trace_default_chunk": default_memory,
            "default_probe_batch": default_batch,
            "trace_all_at_once": all_at_once_memory,
            "chunk_probe_bytes": chunk_bytes,
            "goal_bytes": memory_goal,
            "chunked_compile_s": chunked_compile_s,
        },
        "recompilation": recompilation,
        "targets": targets,
    }
    print(f"## {NAME}: d = {d:,} parameters, {num_probes} trace probes\n")
    print(
        _common.markdown_table(
            rows, ["method", "per_s", "median_ms", "ratio_to_gradient"]
        )
    )
    memory_rows = [
        {"program": "one gradient", **gradient_memory},
        {
            "program": f"hessian_trace, {num_probes} probes, chunks of {PROBE_BATCH}",
            **chunked_memory,
        },
        {
            "program": f"hessian_trace, {num_probes} probes, default chunks of "
            f"{default_batch}",
            **default_memory,
        },
        {
            "program": f"hessian_trace, {num_probes} probes, one at a time",
            **one_at_a_time_memory,
        },
        {
            "program": f"hessian_trace, {num_probes} probes at once",
            **all_at_once_memory,
        },
    ]
    print()
    print(
        _common.markdown_table(
            memory_rows,
            ["program", "argument_bytes", "output_bytes", "temp_bytes", "total_bytes"],
        )
    )
    return _common.finish(args.out, payload)


if __name__ == "__main__":
    main()
