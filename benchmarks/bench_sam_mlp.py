"""SAM on an equinox MLP: flatjax's wrapper against optax.contrib.sam and plain Adam.

A user's training step, one jitted call per step, on an ``equinox.nn.MLP`` (128 -> 256
-> 256 -> 10, 101,386 float32 parameters; ``--smoke``: a tiny one) with a softmax
cross-entropy on a fixed batch of 256 examples:

- ``adam``: ``grads = grad(loss)(params)``; ``optax.adam`` update.
- ``flatjax_sam``: ``sharpness_aware_wrapper(optax.adam(...), radius)`` with the
  default check that the gradient passed is ``grad_fn(params)``.
- ``flatjax_sam_unchecked``: the same with ``check_gradient=False`` (what the check
  costs).
- ``optax_contrib_sam``: ``optax.contrib.sam(adam, chain(normalize(), sgd(radius)),
  opaque_mode=True)``, which also makes one jitted call per SAM step.

Timing: interleaved rounds (each round times ``steps`` consecutive steps of every
method, in turn, after a warm-up); the reported ratio is the median over rounds of
the per-round ratio of step times, so slow drifts of a shared machine cancel. The
target (issue 13): a SAM step costs at most 1.1 x (2 x an Adam step). Memory: the
compiled step's own accounting (``memory_analysis``: arguments, outputs and
temporaries, in bytes), which is exact and the same on every run, beside the
process's peak RSS. The flatjax and optax.contrib SAM trajectories are compared at
the end (same math, float32 rounding).

Usage: ``python benchmarks/bench_sam_mlp.py [--smoke] [--out PATH] [--repeats K]``.
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
import optax  # noqa: E402

from flatjax.optim import sharpness_aware_wrapper  # noqa: E402

NAME = "bench_sam_mlp"
RADIUS = 0.05
LEARNING_RATE = 1e-3


def make_problem(smoke: bool):
    sizes = (
        {"in_size": 8, "width_size": 16, "depth": 2, "out_size": 3, "batch": 32}
        if smoke
        else {
            "in_size": 128,
            "width_size": 256,
            "depth": 2,
            "out_size": 10,
            "batch": 256,
        }
    )
    k_model, k_x, k_y = jax.random.split(jax.random.key(0), 3)
    model = eqx.nn.MLP(
        sizes["in_size"],
        sizes["out_size"],
        sizes["width_size"],
        sizes["depth"],
        key=k_model,
        dtype=jnp.float32,
    )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x = jax.random.normal(k_x, (sizes["batch"], sizes["in_size"]), jnp.float32)
    y = jax.random.randint(k_y, (sizes["batch"],), 0, sizes["out_size"])

    def loss(params, x, y):
        logits = jax.vmap(eqx.combine(params, static))(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    n_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    return params, loss, (x, y), {**sizes, "parameters": n_params}


def make_steps(loss) -> dict[str, tuple[optax.GradientTransformation, Any]]:
    """name -> (optimizer, jitted step(params, state, batch))."""

    def plain(opt):
        @jax.jit
        def step(params, state, batch):
            value, grads = jax.value_and_grad(loss)(params, *batch)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state, value

        return step

    def ours(opt):
        @jax.jit
        def step(params, state, batch):
            value, grads = jax.value_and_grad(loss)(params, *batch)

            def grad_fn(p):
                return jax.grad(loss)(p, *batch)

            updates, state = opt.update(grads, state, params, grad_fn=grad_fn)
            return optax.apply_updates(params, updates), state, value

        return step

    def contrib(opt):
        @jax.jit
        def step(params, state, batch):
            value, grads = jax.value_and_grad(loss)(params, *batch)

            def grad_fn(p, _):
                return jax.grad(loss)(p, *batch)

            updates, state = opt.update(grads, state, params, grad_fn=grad_fn)
            return optax.apply_updates(params, updates), state, value

        return step

    adam = optax.adam(LEARNING_RATE)
    checked = sharpness_aware_wrapper(optax.adam(LEARNING_RATE), RADIUS)
    unchecked = sharpness_aware_wrapper(
        optax.adam(LEARNING_RATE), RADIUS, check_gradient=False
    )
    theirs = optax.contrib.sam(
        optax.adam(LEARNING_RATE),
        optax.chain(optax.contrib.normalize(), optax.sgd(RADIUS)),
        opaque_mode=True,
    )
    return {
        "adam": (adam, plain(adam)),
        "flatjax_sam": (checked, ours(checked)),
        "flatjax_sam_unchecked": (unchecked, ours(unchecked)),
        "optax_contrib_sam": (theirs, contrib(theirs)),
    }


def compiled_memory(step, params, state, batch) -> dict[str, int]:
    analysis = step.lower(params, state, batch).compile().memory_analysis()
    sizes = {
        "argument_bytes": int(analysis.argument_size_in_bytes),
        "output_bytes": int(analysis.output_size_in_bytes),
        "temp_bytes": int(analysis.temp_size_in_bytes),
        "alias_bytes": int(analysis.alias_size_in_bytes),
    }
    sizes["total_bytes"] = (
        sizes["argument_bytes"]
        + sizes["output_bytes"]
        + sizes["temp_bytes"]
        - sizes["alias_bytes"]
    )
    return sizes


def main(argv=None) -> dict[str, Any]:
    args = _common.parse_args(NAME, __doc__.splitlines()[0], argv)
    smoke = args.smoke
    rounds = args.repeats or (2 if smoke else 30)
    steps_per_round = 3 if smoke else 20
    params0, loss, batch, sizes = make_problem(smoke)
    methods = make_steps(loss)
    carries, memory, rss = {}, {}, {}
    for name, (opt, step) in methods.items():
        state = opt.init(params0)
        memory[name] = compiled_memory(step, params0, state, batch)
        _common.reset_peak_memory()
        params, state, _ = _common.block(step(params0, state, batch))  # warm-up
        rss[name] = _common.peak_memory()["host_peak_rss_mib"]
        carries[name] = (params, state)
    times: dict[str, list[float]] = {name: [] for name in methods}
    losses: dict[str, float] = {}
    for _ in range(rounds):
        for name, (_, step) in methods.items():
            params, state = carries[name]
            start = time.perf_counter()
            for _ in range(steps_per_round):
                params, state, value = step(params, state, batch)
            _common.block((params, state, value))
            times[name].append((time.perf_counter() - start) / steps_per_round)
            carries[name] = (params, state)
            losses[name] = float(value)
    ratios = {
        name: statistics.median(
            t / a for t, a in zip(times[name], times["adam"], strict=True)
        )
        for name in methods
    }
    trajectory_diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(
            jax.tree_util.tree_leaves(carries["flatjax_sam"][0]),
            jax.tree_util.tree_leaves(carries["optax_contrib_sam"][0]),
            strict=True,
        )
    )
    rows = [
        {
            "method": name,
            "median_step_s": statistics.median(times[name]),
            "steps_per_s": 1.0 / statistics.median(times[name]),
            "ratio_to_adam": ratios[name],
            "compiled_total_mib": memory[name]["total_bytes"] / 2**20,
            "compiled_temp_mib": memory[name]["temp_bytes"] / 2**20,
            "host_peak_rss_mib": rss[name],
            "final_loss": losses[name],
            "compiled_memory": memory[name],
            "step_times_s": times[name],
        }
        for name in methods
    ]
    goal = 2.2
    targets = [
        {
            "target": f"{name} step / adam step (median of per-round ratios)",
            "measured": ratios[name],
            "goal": goal,
            "passed": ratios[name] <= goal,
        }
        for name in ("flatjax_sam", "flatjax_sam_unchecked")
    ]
    payload = {
        "benchmark": NAME,
        "smoke": smoke,
        "environment": {**_common.environment(), "dtype": "float32"},
        "what_is_timed": __doc__,
        "sizes": sizes,
        "rounds": rounds,
        "steps_per_round": steps_per_round,
        "radius": RADIUS,
        "learning_rate": LEARNING_RATE,
        "results": rows,
        "flatjax_vs_contrib_max_abs_param_diff": trajectory_diff,
        "targets": targets,
        "peak_memory": _common.peak_memory(),
    }
    print(
        f"\nequinox MLP, {sizes['parameters']:,} float32 parameters, batch "
        f"{sizes['batch']}; {rounds} interleaved rounds of {steps_per_round} steps\n"
    )
    columns = [
        "method",
        "steps_per_s",
        "ratio_to_adam",
        "compiled_total_mib",
        "compiled_temp_mib",
        "host_peak_rss_mib",
        "final_loss",
    ]
    print(_common.markdown_table(rows, columns))
    print(
        "\nmax |flatjax SAM - optax.contrib.sam| over the parameters after "
        f"{1 + rounds * steps_per_round} steps: {trajectory_diff:.3g}"
    )
    return _common.finish(args.out, payload)


if __name__ == "__main__":
    main()
