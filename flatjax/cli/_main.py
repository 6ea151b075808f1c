"""The `flatjax` command: `problems` (key numbers of each construction), `sweep`."""

from __future__ import annotations

import argparse
import sys
import time


def _configure_jax() -> None:
    """float64, one XLA host device per CPU core, and a persistent compile cache."""
    import os

    import jax

    from flatjax.sweep import use_cpu_cores

    # Sweeps shard their runs over all devices: on a CPU, one per core. Called
    # in-process after JAX has started (e.g. main() from a notebook), it keeps
    # the devices JAX already has.
    try:
        use_cpu_cores()
    except RuntimeError:
        pass

    jax.config.update("jax_enable_x64", True)
    # Reuse compiled programs across invocations (the reproduction is mostly
    # compile time on a small CPU); XDG_CACHE_HOME is honoured.
    cache = os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
        "flatjax",
        "xla",
    )
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _problem_rows(seed: int):
    """Special points of every problem with their empirical and population risks."""
    import jax
    import jax.numpy as jnp

    from flatjax.problems import (
        ClassicERM,
        FlatERM,
        LeastSquares,
        SAGDTrap,
        SAMSharp,
        SAMTrap,
        SquaredHinge,
    )

    key = jax.random.key(seed)
    radius = 0.5

    def risks(problem, w, S):
        population = problem.population_risk(w)
        return (
            float(problem.empirical_risk(w, S)),
            float(population.value),
            "exact" if bool(population.exact) else "MC",
        )

    def saer_at(problem, w, S, v):
        return float(problem.empirical_risk(w + v, S))

    rows = []
    flat = FlatERM(n=8, rho=0.25)
    S = flat.sample_conditioned(key)
    e_d = jnp.zeros(flat.d).at[-1].set(radius)
    for label, w in [
        ("flat ERM e_I", flat.flat_erm(S)),
        ("sharp ERM rho*e_d", flat.sharp_erm()),
        ("population minimizer 0", flat.population_minimizer()),
    ]:
        rows.append(
            ("FlatERM n=8 rho=0.25", flat.d, label, *risks(flat, w, S))
            + (saer_at(flat, w, S, e_d),)
        )

    classic = ClassicERM(n=8)
    S = classic.sample_conditioned(key)
    for label, w in [
        ("bad ERM e_I", classic.bad_erm(S)),
        ("minimizer 0", classic.population_minimizer()),
    ]:
        rows.append(("ClassicERM n=8", classic.d, label, *risks(classic, w, S), None))

    trap = SAGDTrap(n=8, T=256, rho=0.1)
    S = trap.sample_conditioned(key)
    w1 = trap.initial_point()
    v1 = trap.adversarial_maximizer(S)(w1, 0.35)
    rows.append(
        ("SAGDTrap n=8 T=256 rho=0.1", trap.d, "w_1 = 0 (r=0.35)", *risks(trap, w1, S))
        + (saer_at(trap, w1, S, v1),)
    )

    sharp = SAMSharp()
    S = sharp.sample(key)
    for label, w in [
        ("SAM's fixed point 0", sharp.initial_point()),
        ("flat minimizer -1/2", sharp.flat_minimizer()),
    ]:
        rows.append(
            ("SAMSharp", sharp.d, label, *risks(sharp, w, S))
            + (float(sharp.saer(w, radius)),)
        )

    sam = SAMTrap(n=6, T=16, learning_rate=1 / 24, radius=0.5)
    S = sam.sample_conditioned(key)
    for label, w in [("w_1 = 0", sam.initial_point()), ("realizer w*", sam.realizer())]:
        rows.append(
            ("SAMTrap n=6 T=16 eta=1/24 r=0.5", sam.d, label, *risks(sam, w, S), None)
        )

    for problem, name in [
        (LeastSquares(d=16, n=16), "LeastSquares d=16 n=16"),
        (SquaredHinge(d=16, n=16, margin=0.5), "SquaredHinge d=16 n=16 m=0.5"),
    ]:
        S = problem.sample(key)
        for label, w in [
            ("w_1 = 0", problem.initial_point()),
            ("minimizer w*", problem.population_minimizer()),
        ]:
            rows.append((name, problem.d, label, *risks(problem, w, S), None))
    constants = {
        "SAMTrap delta1": float(sam.delta1),
        "SAMTrap lambda": float(sam.lambda_),
        "SAMTrap gamma": float(sam.gamma),
    }
    return rows, constants, radius


def _print_problems(seed: int) -> int:
    import jax

    start = time.perf_counter()
    rows, constants, radius = _problem_rows(seed)
    device = jax.devices()[0]
    print(
        "flatjax problems: special points of arXiv 2511.03548's constructions "
        f"(float64, {device.platform}, training sets from seed {seed}, drawn on the "
        "theorem's good event)"
    )
    header = (
        f"{'problem':32} {'d':>6}  {'point':24} {'F_S(w)':>10} {'F(w)':>10} "
        f"{'F(w) is':>7} {'F_S(w+v*)':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, d, label, empirical, population, how, perturbed in rows:
        extra = "" if perturbed is None else f"{perturbed:10.4g}"
        print(
            f"{name:32} {d:6d}  {label:24} {empirical:10.4g} {population:10.4g} "
            f"{how:>7} {extra:>10}"
        )
    print(
        f"F_S(w+v*): the empirical risk at the paper's maximizer v* of the ball of "
        f"radius {radius} (r e_d for FlatERM, the oracle r e_(I,1) for SAGDTrap), "
        "i.e. the SAER F_S^r(w); for SAMSharp the closed-form SAER."
    )
    for name, value in constants.items():
        print(f"{name} = {value:.6e}")
    print(f"elapsed {time.perf_counter() - start:.1f} s on {device}")
    return 0


def _sweep(args) -> int:
    import jax

    from flatjax.sweep import SweepConfig, run_sweep

    if args.distributed:
        jax.distributed.initialize()
    chunk = args.chunk_size
    if chunk is not None and chunk != "all":
        try:
            chunk = int(chunk)
        except ValueError:
            print(f"flatjax sweep: --chunk-size must be an int or 'all', got {chunk!r}")
            return 2
    try:
        config = SweepConfig.from_toml(args.config)
        start = time.perf_counter()
        result = run_sweep(
            config,
            args.out,
            memory_budget=args.memory_budget,
            chunk_size=chunk,
            progress=False if args.no_progress else None,
        )
    except ValueError as err:
        print(f"flatjax sweep: {err}", file=sys.stderr)
        return 2
    runs = result.runs
    metrics = [
        c for c in runs.columns if c.startswith(("population_risk_tau", "saer_tau"))
    ]
    keys = [c for c in config.grid if runs[c].nunique() > 1] or ["group"]
    summary = runs.groupby(keys)[metrics + ["nonfinite", "projection_acted"]].mean()
    print(f"flatjax sweep: {len(runs)} runs of {config.problem} / {config.optimizer}")
    print("mean over seeds:")
    print(summary.to_string(float_format=lambda x: f"{x:.6g}"))
    elapsed = time.perf_counter() - start
    print(f"results in {args.out}/runs.parquet; {elapsed:.1f} s on {jax.devices()[0]}")
    return 0


def _reproduce(args) -> int:
    import jax

    from flatjax.reproduce import reproduce

    start = time.perf_counter()
    try:
        experiments = reproduce(
            "full" if args.full else "quick",
            seeds=args.seeds,
            out=args.out,
            only=args.only,
            progress=False if args.no_progress else None,
        )
    except ValueError as err:
        print(f"flatjax reproduce: {err}", file=sys.stderr)
        return 2
    from flatjax.reproduce import exit_status, summary

    elapsed = time.perf_counter() - start
    print(
        f"flatjax reproduce: {summary(experiments)} in {elapsed:.1f} s on "
        f"{jax.device_count()} {jax.devices()[0].platform} "
        f"device(s) ({jax.devices()[0].device_kind}); "
        f"report in {args.out}/report.md"
    )
    for experiment in experiments:
        for check in experiment.checks:
            if check.status in ("FAIL", "INSUFFICIENT SEEDS"):
                print(f"{check.status}: {check.quantity}: {check.criterion}")
    # 0: every verdict passed (or was not informative); 1: a FAIL; 3
    # (EXIT_INSUFFICIENT_SEEDS): too few --seeds to decide some verdict.
    return exit_status(experiments)


def main(argv: list[str] | None = None) -> int:
    """Run the ``flatjax`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="flatjax",
        description="Flat minima and sharpness-aware optimization on exact hard "
        "instances of stochastic convex optimization (arXiv 2511.03548).",
    )
    commands = parser.add_subparsers(dest="command")
    problems = commands.add_parser(
        "problems", help="print each construction's special points and risks"
    )
    problems.add_argument("--seed", type=int, default=0, help="training-set seed")
    sweep = commands.add_parser("sweep", help="run a sweep described in a TOML file")
    sweep.add_argument("config", help="the sweep's TOML file")
    sweep.add_argument("--out", required=True, help="output folder (resumable)")
    sweep.add_argument("--memory-budget", type=int, default=None, help="bytes")
    sweep.add_argument("--chunk-size", default=None, help="runs per chunk, or 'all'")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() first (multi-host runs)",
    )
    repro = commands.add_parser(
        "reproduce", help="run every theorem's experiment and write a report"
    )
    size = repro.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (default)")
    size.add_argument("--full", action="store_true", help="large sizes, for a GPU")
    repro.add_argument("--seeds", type=int, default=None, help="seeds per grid point")
    repro.add_argument("--out", default="results", help="output folder")
    repro.add_argument("--only", nargs="+", default=None, help="experiment names")
    repro.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _configure_jax()
    if args.command == "problems":
        return _print_problems(args.seed)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "reproduce":
        return _reproduce(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
