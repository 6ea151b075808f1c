"""Dataset-steps per second of GD, SAM and SA-GD: flatjax against the alternatives.

One *dataset-step* is one update of one run on one training set. For each problem
and algorithm, at 1, 10, 100, 1000 and 10000 training sets (sizes whose predicted
time or memory is over budget are skipped and say so), the script times:

- ``numpy``: the plain NumPy per-seed loop of ``baselines/numpy_reference.py``
  (written from the paper, independent of flatjax);
- ``optax_per_seed``: ``optax.contrib.sam`` (transparent mode,
  ``adv_optimizer=chain(contrib.normalize(), sgd(r))``, ``sync_period=2``; for GD
  ``optax.sgd``) stepped from Python per seed with a jitted train step
  (``jax.value_and_grad`` of ``problem.empirical_risk``, ``opt.update``,
  ``apply_updates``, running sum for the average): two calls per SAM update;
- ``optax_vmap_scan``: the same train step under ``lax.scan`` and ``vmap`` over
  training sets (chunked like flatjax);
- ``flatjax_per_seed``: ``jax.jit(run)`` called once per seed from Python;
- ``flatjax_vmap``: ``jax.jit`` of ``run`` vmapped over training sets, chunked
  with ``lax.map(..., batch_size=chunk)`` when the sets outnumber the chunk (the
  chunk is calibrated per problem, see ``calibration`` in the JSON);
- ``flatjax_vmap_autodiff``: the same with the problem's autodiff gradient
  (``AbstractProblem.value_and_grad``) instead of its fused ``value_and_grad``;
- ``flatjax_fused``: ``flatjax.runner.run_fused`` (the problem's fused trajectory
  kernel where it has one: SAM and GD on ``SAMTrap``, SA-GD and GD on
  ``SAGDTrap``; ``run`` otherwise), vmapped and chunked the same way, and sharded
  over all local devices with ``shard_map`` as ``flatjax sweep`` does. On a CPU,
  ``_common`` makes one XLA host device per core (``XLA_FLAGS=
  --xla_force_host_platform_device_count``) unless ``XLA_FLAGS`` already sets it.

What flatjax's time includes: everything ``run(..., record_population=False,
suffix_starts=(1,))`` (or ``run_fused``) computes and returns (per-iterate empirical
risk, gradient norm and iterate norm, the uniform average, projection and
non-finite flags, the last iterate), from pre-sampled training sets already on the
device (for ``flatjax_fused``, already placed on the devices' shards). The NumPy and
optax loops compute the same iterates, the uniform average and the loss per step.
Every method's last iterate on the first training set is compared with
flatjax's (``max_abs_diff_vs_flatjax``).

Per-seed loops have a constant rate, so they are timed on at most as many seeds as
fit in a time budget (``timed_seeds``); above 100 sets they reuse the 100-set
measurement (``reused_from_seeds``). Compile time (trace, lower, compile) is the
first call of each jitted vmapped function minus the median steady call (one size
group = one problem, algorithm, method and number of training sets). The
recompilation check calls the jitted vmapped function again with other
hyperparameter values (traced arguments) and reads ``_cache_size()``.

Usage: ``python benchmarks/bench_sweep.py [--smoke] [--out PATH] [--repeats K]``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (first: enables float64)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from baselines import numpy_reference as reference  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from flatjax.optim import FunctionMaximizer, gd, sa_gd, sam  # noqa: E402
from flatjax.problems import (  # noqa: E402
    AbstractProblem,
    LeastSquares,
    SAGDTrap,
    SAMTrap,
)
from flatjax.runner import run, run_fused  # noqa: E402

NAME = "bench_sweep"
METHODS = (
    "numpy",
    "optax_per_seed",
    "optax_vmap_scan",
    "flatjax_per_seed",
    "flatjax_vmap",
    "flatjax_vmap_autodiff",
    "flatjax_fused",
)
#: The method the speed targets are read from (flatjax's fastest path).
BEST = "flatjax_fused"
PER_SEED = ("numpy", "optax_per_seed", "flatjax_per_seed")


@dataclass
class Case:
    """One problem and algorithm, with everything each method needs."""

    problem: str
    algorithm: str  # "sam", "gd" or "sa_gd"
    cls: type
    static: dict[str, Any]  # static constructor arguments
    hyper: dict[str, float]  # traced hyperparameters (incl. problem constants)
    hyper_alt: dict[str, float]  # other values, for the recompilation check
    steps: int
    numpy_fn: Callable[[np.ndarray, dict[str, float]], reference.LoopResult]
    optax: bool = True
    problem_keys: tuple[str, ...] = ()  # hyper entries the constructor takes
    chunks: tuple[int, ...] = (1, 4, 16, 64)
    calibrate_seeds: int = 128
    notes: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)

    def make(self, hyper, cls=None) -> AbstractProblem:
        kwargs = {k: hyper[k] for k in self.problem_keys}
        return (cls or self.cls)(**self.static, **kwargs)

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.static.items())
        algorithm = {"sam": "SAM", "gd": "GD", "sa_gd": "SA-GD"}[self.algorithm]
        return f"{algorithm} on {self.problem}({args})"


def autodiff_class(cls: type) -> type:
    """``cls`` with its fused gradient replaced by autodiff of ``empirical_risk``."""
    return type(
        f"Autodiff{cls.__name__}",
        (cls,),
        {"value_and_grad": AbstractProblem.value_and_grad, "__module__": __name__},
    )


def optimizer(case: Case, hyper):
    if case.algorithm == "sam":
        return sam(hyper["learning_rate"], hyper["radius"])
    if case.algorithm == "sa_gd":
        return sa_gd(hyper["learning_rate"], hyper["radius"])
    return gd(hyper["learning_rate"])


def flatjax_one(case: Case, cls=None):
    """``(S, hyper) -> RunResult`` for one training set."""

    def one(S, hyper):
        problem = case.make(hyper, cls)
        maximizer = None
        if case.algorithm == "sa_gd":
            maximizer = FunctionMaximizer(problem.adversarial_maximizer(S))
        return run(
            problem,
            optimizer(case, hyper),
            S,
            case.steps,
            maximizer=maximizer,
            record_population=False,
            suffix_starts=(1,),
        )

    return one


def fused_one(case: Case):
    """``(S, hyper) -> RunResult`` through ``run_fused``."""

    def one(S, hyper):
        problem = case.make(hyper)
        maximizer = None
        if case.algorithm == "sa_gd":
            maximizer = problem.adversarial_maximizer(S)
        return run_fused(
            problem,
            case.algorithm,
            S,
            case.steps,
            learning_rate=hyper["learning_rate"],
            radius=hyper.get("radius", 0.0),
            maximizer=maximizer,
            record_population=False,
            suffix_starts=(1,),
        )

    return one


def optax_one(case: Case):
    """``(S, hyper) -> (last, average, losses)``: optax's SAM or SGD under scan."""

    def one(S, hyper):
        problem = case.make(hyper)
        step, opt, calls = optax_train_step(case, problem, hyper)
        w1 = problem.initial_point()

        def body(carry, _):
            w, state, total = carry
            w, state, total, loss = step(w, state, total, S)
            return (w, state, total), loss

        (w, _, total), losses = jax.lax.scan(
            body, (w1, opt.init(w1), w1), None, length=calls * (case.steps - 1)
        )
        return w, total / case.steps, losses

    return one


def optax_train_step(case: Case, problem, hyper):
    """A user's train step: loss and gradient, ``opt.update``, ``apply_updates``."""
    if case.algorithm == "sam":
        opt = optax.contrib.sam(
            optax.sgd(hyper["learning_rate"]),
            optax.chain(optax.contrib.normalize(), optax.sgd(hyper["radius"])),
            sync_period=2,
        )
        calls = 2  # transparent mode: one ascent call, one outer call per update
    else:
        opt, calls = optax.sgd(hyper["learning_rate"]), 1

    def step(w, state, total, S):
        loss, grad = jax.value_and_grad(problem.empirical_risk)(w, S)
        updates, state = opt.update(grad, state, w)
        w = optax.apply_updates(w, updates)
        if case.algorithm == "sam":  # count only the iterates of outer updates
            outer = state.steps_since_sync == 0
            total = total + jnp.where(outer, w, jnp.zeros_like(w))
        else:
            total = total + w
        return w, state, total, loss

    return step, opt, calls


def batched(one, seeds: int, chunk: int):
    """``jit`` of ``one`` over a stack of training sets, chunked by ``lax.map``.

    With more sets than ``chunk``, the stack is padded (by repeating its first
    sets) to a multiple of ``chunk`` so that ``lax.map`` compiles one copy of the
    run; the padding's outputs are dropped (and its time counted against us).
    """
    if seeds <= chunk:
        return jax.jit(jax.vmap(one, in_axes=(0, None)))
    padded = -seeds % chunk

    def mapped(S, hyper):
        if padded:
            S = jnp.concatenate([S, S[:padded]])
        out = jax.lax.map(lambda s: one(s, hyper), S, batch_size=chunk)
        return jax.tree_util.tree_map(lambda x: x[:seeds], out)

    return jax.jit(mapped)


def sharded(one, seeds: int, chunk: int):
    """``batched`` on each local device's share of the sets (``shard_map``).

    One device, or sets that do not split evenly: ``batched`` itself.
    """
    count = jax.local_device_count()
    if count == 1 or seeds % count:
        return batched(one, seeds, chunk)
    local = batched(one, seeds // count, chunk)
    mesh = jax.make_mesh((count,), ("sets",))
    program = jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P("sets"), P()),
            out_specs=P("sets"),
            check_vma=False,
        )
    )
    placement = NamedSharding(mesh, P("sets"))

    def call(S, hyper):
        # A no-op for sets already placed on the shards (see _placed).
        return program(jax.device_put(S, placement), hyper)

    call._cache_size = program._cache_size  # for check_recompilation
    call.placement = placement
    return call


def _placed(fn, S):
    """``S`` on the devices' shards, before timing, where ``fn`` is sharded."""
    placement = getattr(fn, "placement", None)
    return S if placement is None else _common.block(jax.device_put(S, placement))


def as_hyper(values: dict[str, float]):
    return {k: jnp.asarray(v, jnp.float64) for k, v in values.items()}


def final_iterate(method: str, out) -> np.ndarray:
    if method == "numpy":
        return out.final
    if method.startswith("optax"):
        return np.asarray(out[0])
    return np.asarray(out.final)


# ----------------------------------------------------------------------------------
# Cases.


def samtrap_case(n, T, algorithm="sam", chunks=(1, 4, 16, 64)) -> Case:
    eta = 1 / 24
    radius = 1 / (2 * eta * math.sqrt(T))  # the saturated regime of digest §7.5

    def numpy_fn(S, h):
        fn = reference.sam_samtrap if algorithm == "sam" else reference.gd_samtrap
        return fn(S, n, T, h["learning_rate"], h["radius"], T)

    return Case(
        problem="SAMTrap",
        algorithm=algorithm,
        cls=SAMTrap,
        static={"n": n, "T": T},
        hyper={"learning_rate": eta, "radius": radius},
        hyper_alt={"learning_rate": 0.5 * eta, "radius": 0.5 * radius},
        steps=T,
        numpy_fn=numpy_fn,
        problem_keys=("learning_rate", "radius"),
        chunks=chunks,
        notes="eta = 1/24, r = 1/(2 eta sqrt(T)); S drawn given the good event",
    )


def sagdtrap_case(
    n, T, algorithm="sa_gd", chunks=(1, 4, 16), calibrate_seeds=16
) -> Case:
    rho, eta = 0.1, 0.25
    radius = rho + 1 / (eta * math.sqrt(T))  # digest §7.3

    def numpy_fn(S, h):
        if algorithm == "sa_gd":
            return reference.sa_gd_sagdtrap(
                S, T, h["rho"], h["learning_rate"], h["radius"], T
            )
        return reference.gd_sagdtrap(S, T, h["rho"], h["learning_rate"], T)

    return Case(
        problem="SAGDTrap",
        algorithm=algorithm,
        cls=SAGDTrap,
        static={"n": n, "T": T},
        hyper={"learning_rate": eta, "radius": radius, "rho": rho},
        hyper_alt={"learning_rate": 0.5 * eta, "radius": radius, "rho": 0.05},
        steps=T,
        numpy_fn=numpy_fn,
        optax=algorithm == "gd",  # optax has no exact-ascent SA-GD
        problem_keys=("rho",),
        chunks=chunks,
        calibrate_seeds=calibrate_seeds,
        notes="rho = 0.1, eta = 1/4, r = rho + 1/(eta sqrt(T)); adversarial oracle",
    )


def least_squares_case(d, n, steps, algorithm="gd") -> Case:
    eta, radius = 1.0, 0.05

    def numpy_fn(S, h):
        r = h["radius"] if algorithm == "sam" else 0.0
        return reference.sam_least_squares(S, h["learning_rate"], r, steps)

    return Case(
        problem="LeastSquares",
        algorithm=algorithm,
        cls=LeastSquares,
        static={"d": d, "n": n},
        hyper={"learning_rate": eta, "radius": radius},
        hyper_alt={"learning_rate": 0.5, "radius": 0.1},
        steps=steps,
        numpy_fn=numpy_fn,
        notes="x uniform on the sphere, y = x.w*, eta = 1, r = 0.05",
    )


def cases(smoke: bool) -> list[Case]:
    if smoke:  # every method once; bench_roofline's smoke runs SA-GD and GD
        return [samtrap_case(6, 8, chunks=(2,))]
    return [
        samtrap_case(6, 64),
        samtrap_case(6, 16),
        samtrap_case(6, 64, "gd"),
        sagdtrap_case(8, 256),
        sagdtrap_case(6, 64, chunks=(1, 4, 16, 64), calibrate_seeds=128),
        sagdtrap_case(8, 256, "gd"),
        least_squares_case(256, 64, 64),
        least_squares_case(1024, 64, 64, "sam"),
    ]


# ----------------------------------------------------------------------------------
# Measurements.


@dataclass
class Settings:
    seeds: tuple[int, ...]
    repeats: int
    per_seed_budget_s: float  # time budget of one timed per-seed measurement
    vmap_budget_s: float  # skip a vmapped size predicted slower than this
    memory_budget_bytes: int
    calibrate_seeds: int
    per_seed_max_seeds: int  # per-seed loops above this reuse its measurement


def sample_sets(case: Case, count: int) -> jax.Array:
    problem = case.make(case.hyper)
    sampler = getattr(problem, "sample_conditioned", problem.sample)
    keys = jax.random.split(jax.random.key(0), count)
    return _common.block(jax.jit(jax.vmap(sampler))(keys))


def measure_vmapped(one, S, chunk, settings, hyper, predicted_s, wrap=None):
    """Compile (timed as first call minus a steady call), then time the calls."""
    seeds = S.shape[0]
    fn = (wrap or batched)(one, seeds, chunk)
    S = _placed(fn, S)
    _common.reset_peak_memory()
    out, first_s = _common.timed(lambda: fn(S, hyper))
    repeats = settings.repeats if predicted_s < 5.0 else 1
    timing = _common.time_call(lambda: fn(S, hyper), repeats=repeats, warmup=0)
    compile_s = max(first_s - timing["median_s"], 0.0)
    return fn, out, compile_s, timing


def measure_per_seed(case, method, S, settings, hyper, hyper_values, S_host):
    """Time a per-seed loop on as many seeds as the budget allows."""
    seeds = S.shape[0]
    if method == "numpy":

        def loop(count):
            return [case.numpy_fn(S_host[k], hyper_values) for k in range(count)]

    elif method == "flatjax_per_seed":
        step = jax.jit(flatjax_one(case))

        def loop(count):
            return [step(S[k], hyper) for k in range(count)]

    else:
        problem = case.make(hyper_values)
        step, opt, calls = optax_train_step(case, problem, hyper_values)
        step = jax.jit(step)

        def loop(count):
            outs = []
            for k in range(count):
                w = problem.initial_point()
                state, total = opt.init(w), w
                for _ in range(calls * (case.steps - 1)):
                    w, state, total, _ = step(w, state, total, S[k])
                outs.append((w, total / case.steps))
            return outs

    _common.block(loop(1))  # warm-up and compile
    _, pilot = _common.timed(lambda: loop(1))
    count = int(max(1, min(seeds, settings.per_seed_budget_s / max(pilot, 1e-9))))
    _common.reset_peak_memory()
    timing = _common.time_call(lambda: loop(count), repeats=settings.repeats, warmup=0)
    first = loop(1)[0]
    return count, timing, first


def run_case(case: Case, settings: Settings) -> dict[str, Any]:
    hyper, hyper_alt = as_hyper(case.hyper), as_hyper(case.hyper_alt)
    d = case.make(case.hyper).d
    updates = case.steps - 1
    all_sets = sample_sets(case, max(settings.seeds))
    host_sets = np.asarray(all_sets)
    methods = [m for m in METHODS if case.optax or not m.startswith("optax")]
    ones = {
        "flatjax_vmap": flatjax_one(case),
        "flatjax_vmap_autodiff": flatjax_one(case, autodiff_class(case.cls)),
        "optax_vmap_scan": optax_one(case),
        "flatjax_fused": fused_one(case),
    }
    wraps = {"flatjax_fused": sharded}

    # Calibrate the chunk of each vmapped method on a mid-size stack.
    calibration: dict[str, dict[int, float]] = {}
    chunk_of: dict[str, int] = {}
    for method in ("flatjax_vmap", "optax_vmap_scan", "flatjax_fused"):
        if method not in methods:
            continue
        if len(case.chunks) == 1:
            chunk_of[method] = case.chunks[0]
            continue
        count = min(case.calibrate_seeds, settings.calibrate_seeds)
        if method in wraps:
            # Sharded: each device gets 1/k of the sets; calibrate on enough
            # sets that every chunk size is also tried under lax.map.
            count = min(count * 4, max(settings.seeds))
        S = all_sets[:count]
        rates = {}
        for chunk in case.chunks:
            fn = wraps.get(method, batched)(ones[method], S.shape[0], chunk)
            S_placed = _placed(fn, S)
            timing = _common.time_call(
                lambda fn=fn, S=S_placed: fn(S, hyper), repeats=2
            )
            rates[chunk] = S.shape[0] * updates / timing["min_s"]
        calibration[method] = rates
        chunk_of[method] = max(rates, key=rates.get)
    chunk_of["flatjax_vmap_autodiff"] = chunk_of["flatjax_vmap"]

    rows: list[dict[str, Any]] = []
    reference_final = None
    recompile: dict[str, Any] = {}
    last_rate: dict[str, float] = {}
    for seeds in settings.seeds:
        S = all_sets[:seeds]
        for method in methods:
            row = {"method": method, "seeds": seeds}
            if method in PER_SEED and seeds > settings.per_seed_max_seeds:
                # A per-seed loop's rate does not depend on the number of sets.
                earlier = next(
                    r
                    for r in rows
                    if r["method"] == method
                    and "reused_from_seeds" not in r
                    and r["seeds"]
                    == max(
                        s for s in settings.seeds if s <= settings.per_seed_max_seeds
                    )
                )
                row.update(
                    {k: v for k, v in earlier.items() if k not in ("seeds", "method")}
                )
                row["reused_from_seeds"] = earlier["seeds"]
                rows.append(row)
                continue
            if method in PER_SEED:
                count, timing, first = measure_per_seed(
                    case, method, S, settings, hyper, case.hyper, host_sets
                )
                row.update(timed_seeds=count, **timing)
                row["dataset_steps_per_s"] = count * updates / timing["median_s"]
                row["dataset_steps_per_s_best"] = count * updates / timing["min_s"]
                row["peak_memory"] = _common.peak_memory()
                final = final_iterate(method, first)
            else:
                predicted = seeds * updates / last_rate.get(method, math.inf)
                nbytes = seeds * d * 8 * 3
                if predicted > settings.vmap_budget_s:
                    row["skipped"] = f"predicted {predicted:.0f} s per call"
                    rows.append(row)
                    continue
                if nbytes > settings.memory_budget_bytes:
                    row["skipped"] = f"outputs need about {nbytes / 2**30:.1f} GiB"
                    rows.append(row)
                    continue
                chunk = chunk_of[method]
                fn, out, compile_s, timing = measure_vmapped(
                    ones[method],
                    S,
                    chunk,
                    settings,
                    hyper,
                    predicted,
                    wraps.get(method),
                )
                row.update(chunk=min(chunk, seeds), compile_s=compile_s, **timing)
                row["dataset_steps_per_s"] = seeds * updates / timing["median_s"]
                row["dataset_steps_per_s_best"] = seeds * updates / timing["min_s"]
                row["peak_memory"] = _common.peak_memory()
                last_rate[method] = row["dataset_steps_per_s_best"]
                if method in ("flatjax_vmap", BEST) and method not in recompile:
                    recompile[method] = check_recompilation(fn, S, hyper, hyper_alt)
                final = final_iterate(method, out)[0]
                if method == "flatjax_vmap" and reference_final is None:
                    reference_final = final
                    for earlier in rows:
                        if "final" in earlier:
                            earlier["max_abs_diff_vs_flatjax"] = float(
                                np.max(np.abs(earlier.pop("final") - final))
                            )
            if reference_final is None:
                row["final"] = final
            else:
                row["max_abs_diff_vs_flatjax"] = float(
                    np.max(np.abs(final - reference_final))
                )
            rows.append(row)
    for row in rows:
        row.pop("final", None)
    return {
        "label": case.label,
        "problem": case.problem,
        "algorithm": case.algorithm,
        "sizes": {**case.static, "d": d, "steps": case.steps, "updates": updates},
        "hyperparameters": case.hyper,
        "notes": case.notes,
        "chunk": chunk_of,
        "calibration": {
            m: {str(k): v for k, v in rates.items()} for m, rates in calibration.items()
        },
        "recompilation": recompile,
        "results": rows,
    }


def check_recompilation(fn, S, hyper, hyper_alt) -> dict[str, Any]:
    """Call the jitted function twice with different hyperparameter values."""
    _common.block(fn(S, hyper))
    before = fn._cache_size()
    _common.block(fn(S, hyper_alt))
    after = fn._cache_size()
    return {
        "cache_size_before": before,
        "cache_size_after": after,
        "recompiled": after != before,
    }


# ----------------------------------------------------------------------------------
# Summary.


def rate(group, method, seeds):
    for row in group["results"]:
        if row["method"] == method and row["seeds"] == seeds and "skipped" not in row:
            return row["dataset_steps_per_s"]
    return None


def targets(groups, smoke: bool) -> list[dict[str, Any]]:
    out = []
    sam_groups = [
        g
        for g in groups
        if g["problem"] == "SAMTrap"
        and g["algorithm"] == "sam"
        and (smoke or (g["sizes"]["n"], g["sizes"]["T"]) == (6, 64))
    ]
    for g in sam_groups[:1]:
        for seeds in sorted(
            {s for s in (100, 1000) if rate(g, BEST, s)}
            or {max(r["seeds"] for r in g["results"])}
        ):
            ours = rate(g, BEST, seeds)
            for base, goal in (("numpy", 20.0), ("optax_per_seed", 15.0)):
                theirs = rate(g, base, seeds)
                if ours and theirs:
                    out.append(
                        {
                            "target": f"{g['label']}: {BEST} / {base} at {seeds} "
                            "training sets",
                            "measured": ours / theirs,
                            "goal": goal,
                            "passed": ours / theirs >= goal,
                        }
                    )
        flat = [r for r in g["results"] if r["method"] == BEST and "skipped" not in r]
        if len(flat) >= 2:
            best = max(r["dataset_steps_per_s"] for r in flat)
            largest = max(flat, key=lambda r: r["seeds"])
            out.append(
                {
                    "target": f"{g['label']}: {BEST} throughput at the largest "
                    "size / best over sizes (stays flat: >= 0.7)",
                    "measured": largest["dataset_steps_per_s"] / best,
                    "goal": 0.7,
                    "passed": largest["dataset_steps_per_s"] / best >= 0.7,
                }
            )
    for method in ("flatjax_vmap", BEST):
        compiles = [
            r["compile_s"]
            for g in groups
            for r in g["results"]
            if r["method"] == method and "compile_s" in r
        ]
        if compiles:
            out.append(
                {
                    "target": f"{method} compile time per size group (max, s)",
                    "measured": max(compiles),
                    "goal": 5.0,
                    "passed": max(compiles) <= 5.0,
                    "lower_is_better": True,
                }
            )
    recompiled = [
        check["recompiled"] for g in groups for check in g["recompilation"].values()
    ]
    out.append(
        {
            "target": "no recompilation when only hyperparameter values change",
            "measured": sum(recompiled),
            "goal": 0,
            "passed": not any(recompiled),
            "lower_is_better": True,
        }
    )
    return out


def print_tables(groups, target_rows) -> None:
    for g in groups:
        print(
            f"\n### {g['label']}  (d = {g['sizes']['d']:,}, "
            f"{g['sizes']['updates']} updates; chunk {g['chunk']})\n"
        )
        seeds_list = sorted({r["seeds"] for r in g["results"]})
        methods = [m for m in METHODS if any(r["method"] == m for r in g["results"])]
        table = []
        for seeds in seeds_list:
            row = {"datasets": seeds}
            for m in methods:
                row[m] = rate(g, m, seeds)
            ours = row.get(BEST)
            for base in ("numpy", "optax_per_seed"):
                if ours and row.get(base):
                    row[f"fused/{base}"] = ours / row[base]
            compile_s = [
                r.get("compile_s")
                for r in g["results"]
                if r["seeds"] == seeds and r["method"] == BEST
            ]
            row["compile_s"] = compile_s[0] if compile_s else None
            table.append(row)
        columns = [
            "datasets",
            *methods,
            *[
                c
                for c in ("fused/numpy", "fused/optax_per_seed")
                if any(c in t for t in table)
            ],
            "compile_s",
        ]
        print("dataset-steps/s (median of repeats)\n")
        print(_common.markdown_table(table, columns))
        for method, check in g["recompilation"].items():
            print(
                f"\n{method} recompiled on new hyperparameter values: "
                f"{check['recompiled']}"
            )
    print("\n### Targets\n")
    print(_common.markdown_table(target_rows, ["target", "measured", "goal", "passed"]))


def main(argv=None) -> dict[str, Any]:
    args = _common.parse_args(NAME, __doc__.splitlines()[0], argv)
    smoke = args.smoke
    settings = Settings(
        seeds=(2,) if smoke else (1, 10, 100, 1000, 10000),
        repeats=args.repeats or (1 if smoke else 3),
        per_seed_budget_s=0.05 if smoke else 2.0,
        vmap_budget_s=30.0 if smoke else 40.0,
        memory_budget_bytes=2 * 2**30,
        calibrate_seeds=2 if smoke else 128,
        per_seed_max_seeds=2 if smoke else 100,
    )
    groups = []
    for case in cases(smoke):
        start = time.perf_counter()
        group = run_case(case, settings)
        group["wall_s"] = time.perf_counter() - start
        groups.append(group)
        print(f"[{NAME}] {group['label']}: {group['wall_s']:.1f} s", flush=True)
    target_rows = targets(groups, smoke)
    payload = {
        "benchmark": NAME,
        "smoke": smoke,
        "environment": _common.environment(),
        "settings": settings.__dict__,
        "what_is_timed": __doc__,
        "groups": groups,
        "targets": target_rows,
        "peak_memory": _common.peak_memory(),
    }
    print_tables(groups, target_rows)
    _common.write_json(args.out, payload)
    print(f"\nwrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
