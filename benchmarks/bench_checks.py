"""Overhead of flatjax's run-time checks of traced hyperparameters.

flatjax checks a traced learning rate, radius, $\\rho$ or margin while the program
runs (``equinox.error_if``), unless ``flatjax.runtime_checks(False)`` is in force
when the program is traced. This script times the fused kernels a sweep runs,
``flatjax.run_fused`` vmapped over traced hyperparameters (each run builds its
problem from them, as ``flatjax sweep`` does), compiled once with the checks on
and once with them off:

- ``SAMTrap`` + SAM (``"sam"``), vmapped over (learning rate, radius);
- ``SAGDTrap`` + SA-GD (``"sa_gd"`` with ``adversarial_maximizer``), vmapped over
  (learning rate, radius, $\\rho$).

Timing: after warm-up calls of each, rounds alternate the two programs (the
order flips every round); a program's time in a round is the fastest of 5
back-to-back calls (2 in smoke mode), and the overhead is the median over rounds
of the per-round ratio (checked time / unchecked time) minus 1; target <= 5%. Both
programs must return bit-identical results (the checks only read their inputs).

Usage: ``python benchmarks/bench_checks.py [--smoke] [--out PATH] [--repeats K]``
(``--repeats`` is the number of rounds).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (first: enables float64)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import flatjax  # noqa: E402
from flatjax.optim import FunctionMaximizer  # noqa: E402
from flatjax.problems import SAGDTrap, SAMTrap  # noqa: E402
from flatjax.runner import run_fused  # noqa: E402

NAME = "bench_checks"
GOAL = 0.05


def sam_case(n: int, T: int, batch: int):
    """SAM on SAMTrap(n, T), vmapped over (learning rate, radius)."""
    S = SAMTrap(n, T, 0.1, 0.1, check_theorem=False).sample_conditioned(
        jax.random.key(0)
    )

    def one(learning_rate, radius):
        problem = SAMTrap(n, T, learning_rate, radius)
        result = run_fused(
            problem,
            "sam",
            S,
            T,
            learning_rate=learning_rate,
            radius=radius,
            record_population=False,
            suffix_starts=(1,),
        )
        return result.final, result.nonfinite_step

    limit = 1.0 / (2.0 * np.sqrt(T))
    rates = jnp.linspace(0.05, 0.5, batch)
    radii = jnp.full((batch,), limit)  # eta * r <= limit / 2: the theorem holds
    return jax.vmap(one), (rates, radii), {"n": n, "T": T, "d": 2**n * T + 1}


def sagd_case(n: int, T: int, batch: int):
    """SA-GD with the adversarial maximizer on SAGDTrap(n, T), vmapped."""
    S = SAGDTrap(n, T).sample_conditioned(jax.random.key(1))

    def one(learning_rate, radius, rho):
        problem = SAGDTrap(n, T, rho)
        maximizer = FunctionMaximizer(problem.adversarial_maximizer(S))
        result = run_fused(
            problem,
            "sa_gd",
            S,
            T,
            learning_rate=learning_rate,
            radius=radius,
            maximizer=maximizer,
            record_saer=True,
            record_population=False,
            suffix_starts=(1,),
        )
        return result.final, result.nonfinite_step

    rates = jnp.linspace(0.1, 0.5, batch)
    radii = jnp.full((batch,), 0.3)
    rhos = jnp.full((batch,), 0.05)
    return jax.vmap(one), (rates, radii, rhos), {"n": n, "T": T, "d": 2**n * T + 1}


def compiled(fn, args, checks: bool):
    """``jax.jit(fn)``, traced and compiled with the run-time checks on or off."""
    with flatjax.runtime_checks(checks):
        jitted = jax.jit(fn)
        out = _common.block(jitted(*args))  # traces and compiles here
    return jitted, out


def measure(
    label: str, fn, args, sizes: dict, rounds: int, inner: int
) -> dict[str, Any]:
    checked, out_checked = compiled(fn, args, True)
    unchecked, out_unchecked = compiled(fn, args, False)
    max_diff = max(
        float(jnp.max(jnp.abs(a.astype(jnp.float64) - b.astype(jnp.float64))))
        for a, b in zip(
            jax.tree_util.tree_leaves(out_checked),
            jax.tree_util.tree_leaves(out_unchecked),
            strict=True,
        )
    )
    for fn_ in (checked, unchecked, checked, unchecked):  # untimed warm-up round
        _common.block(fn_(*args))
    times = {"checked": [], "unchecked": []}
    ratios = []
    for r in range(rounds):
        order = ("checked", "unchecked") if r % 2 == 0 else ("unchecked", "checked")
        this_round = {}
        for name in order:
            fn_ = checked if name == "checked" else unchecked
            # The fastest of a few back-to-back calls: on a shared machine a
            # single call is often delayed by other jobs (seen: 4x).
            calls = []
            for _ in range(inner):
                start = time.perf_counter()
                _common.block(fn_(*args))
                calls.append(time.perf_counter() - start)
            this_round[name] = min(calls)
            times[name].append(this_round[name])
        ratios.append(this_round["checked"] / this_round["unchecked"])
    overhead = statistics.median(ratios) - 1.0
    return {
        "label": label,
        "sizes": {**sizes, "batch": int(args[0].shape[0])},
        "rounds": rounds,
        "calls_per_round": inner,
        "median_checked_s": statistics.median(times["checked"]),
        "median_unchecked_s": statistics.median(times["unchecked"]),
        "ratios": ratios,
        "overhead": overhead,
        "max_abs_diff": max_diff,
    }


def main(argv=None) -> dict[str, Any]:
    args = _common.parse_args(NAME, __doc__.splitlines()[0], argv)
    smoke = args.smoke
    rounds = args.repeats or (2 if smoke else 9)
    # SA-GD's kernel is ~5x faster per step than SAM's: T = 256 gives it a call
    # time like SAM's at T = 64 (~50 ms here), long enough to time on a shared
    # machine (at T = 64, ~10 ms calls, the per-round ratios spread from 0.35 to
    # 2.5 under load).
    cases = (
        ("SAMTrap SAM", sam_case, (6, 6, 2) if smoke else (6, 64, 16)),
        ("SAGDTrap SA-GD", sagd_case, (6, 6, 2) if smoke else (6, 256, 16)),
    )
    rows = []
    for label, make, (n, T, batch) in cases:
        fn, fn_args, sizes = make(n, T, batch)
        rows.append(measure(label, fn, fn_args, sizes, rounds, 2 if smoke else 5))
        print(f"[{NAME}] {label} done", flush=True)
    targets = [
        {
            "target": f"{row['label']}: run-time checks overhead (median ratio - 1)",
            "measured": row["overhead"],
            "goal": GOAL,
            "passed": row["overhead"] <= GOAL,
        }
        for row in rows
    ]
    payload = {
        "benchmark": NAME,
        "smoke": smoke,
        "environment": _common.environment(),
        "what_is_timed": __doc__,
        "results": rows,
        "targets": targets,
    }
    table = [
        {
            "case": row["label"],
            "d": row["sizes"]["d"],
            "batch": row["sizes"]["batch"],
            "steps": row["sizes"]["T"],
            "checked (s)": row["median_checked_s"],
            "unchecked (s)": row["median_unchecked_s"],
            "overhead": row["overhead"],
            "max |diff|": row["max_abs_diff"],
        }
        for row in rows
    ]
    print(_common.markdown_table(table, list(table[0])))
    return _common.finish(args.out, payload)


if __name__ == "__main__":
    main()
