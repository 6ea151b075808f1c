"""The `flatjax` command: `problems`, `sweep` and `reproduce`.

Every user error (a bad argument, a bad configuration file, an unusable output
folder) is reported as one line on stderr with exit status 2; `--debug` shows the
traceback instead. Anything else is a bug in flatjax: one line saying so (exit 1),
or the traceback with `--debug`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import pandas as pd

#: Exceptions that mean "the input was wrong", not "flatjax is broken": bad values
#: and types (ValueError covers TOML, JSON and UTF-8 decoding errors) and files that
#: cannot be read or written.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)


class UsageError(Exception):
    """A command-line mistake found after parsing; reported as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors reported as one line (no usage block)."""

    def error(self, message: str):  # type: ignore[override]
        print(
            f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr
        )
        raise SystemExit(2)


def _configure_jax() -> None:
    """float64, one XLA host device per CPU core, and a persistent compile cache."""
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


def _environment_line() -> str:
    """flatjax, JAX and device versions in one line, from ``environment()``."""
    from flatjax._environment import environment

    env = environment()
    return (
        f"flatjax {env['flatjax']} (jax {env['jax']}, jaxlib {env['jaxlib']}, "
        f"python {env['python']}; {env['device_count']} {env['platform']} "
        f"device(s): {env['device_kind']}; x64 {'on' if env['x64'] else 'off'})"
    )


def _show_progress(args) -> bool:
    """``--progress``/``--no-progress``, else a bar exactly when stderr is a TTY."""
    return sys.stderr.isatty() if args.progress is None else args.progress


# --------------------------------------------------------------------- problems


def _risks(problem, w, S):
    population = problem.population_risk(w)
    return (
        float(problem.empirical_risk(w, S)),
        float(population.value),
        "exact" if bool(population.exact) else "MC",
    )


def _flat_erm_rows(key, radius):
    import jax.numpy as jnp

    from flatjax.problems import FlatERM

    flat = FlatERM(n=8, rho=0.25)
    S = flat.sample_conditioned(key)
    e_d = jnp.zeros(flat.d).at[-1].set(radius)
    return [
        ("FlatERM n=8 rho=0.25", flat.d, label, *_risks(flat, w, S))
        + (float(flat.empirical_risk(w + e_d, S)),)
        for label, w in [
            ("flat ERM e_I", flat.flat_erm(S)),
            ("sharp ERM rho*e_d", flat.sharp_erm()),
            ("population minimizer 0", flat.population_minimizer()),
        ]
    ]


def _classic_erm_rows(key, radius):
    from flatjax.problems import ClassicERM

    classic = ClassicERM(n=8)
    S = classic.sample_conditioned(key)
    return [
        ("ClassicERM n=8", classic.d, label, *_risks(classic, w, S), None)
        for label, w in [
            ("bad ERM e_I", classic.bad_erm(S)),
            ("minimizer 0", classic.population_minimizer()),
        ]
    ]


def _sagd_trap_rows(key, radius):
    from flatjax.problems import SAGDTrap

    trap = SAGDTrap(n=8, T=256, rho=0.1)
    S = trap.sample_conditioned(key)
    w1 = trap.initial_point()
    v1 = trap.adversarial_maximizer(S)(w1, 0.35)
    return [
        ("SAGDTrap n=8 T=256 rho=0.1", trap.d, "w_1 = 0 (r=0.35)", *_risks(trap, w1, S))
        + (float(trap.empirical_risk(w1 + v1, S)),)
    ]


def _sam_sharp_rows(key, radius):
    from flatjax.problems import SAMSharp

    sharp = SAMSharp()
    S = sharp.sample(key)
    return [
        ("SAMSharp", sharp.d, label, *_risks(sharp, w, S))
        + (float(sharp.saer(w, radius)),)
        for label, w in [
            ("SAM's fixed point 0", sharp.initial_point()),
            ("flat minimizer -1/2", sharp.flat_minimizer()),
        ]
    ]


def _sam_trap_rows(key, radius):
    from flatjax.problems import SAMTrap

    sam = SAMTrap(n=6, T=16, learning_rate=1 / 24, radius=0.5)
    S = sam.sample_conditioned(key)
    return [
        ("SAMTrap n=6 T=16 eta=1/24 r=0.5", sam.d, label, *_risks(sam, w, S), None)
        for label, w in [
            ("w_1 = 0", sam.initial_point()),
            ("realizer w*", sam.realizer()),
        ]
    ]


def _benign_rows(key, radius):
    from flatjax.problems import LeastSquares, SquaredHinge

    rows = []
    for problem, name in [
        (LeastSquares(d=16, n=16), "LeastSquares d=16 n=16"),
        (SquaredHinge(d=16, n=16, margin=0.5), "SquaredHinge d=16 n=16 m=0.5"),
    ]:
        S = problem.sample(key)
        for label, w in [
            ("w_1 = 0", problem.initial_point()),
            ("minimizer w*", problem.population_minimizer()),
        ]:
            rows.append((name, problem.d, label, *_risks(problem, w, S), None))
    return rows


_PROBLEM_ROWS: tuple[Callable, ...] = (
    _flat_erm_rows,
    _classic_erm_rows,
    _sagd_trap_rows,
    _sam_sharp_rows,
    _sam_trap_rows,
    _benign_rows,
)


def _problems(args) -> int:
    import jax
    from tqdm.auto import tqdm

    from flatjax.problems import SAMTrap

    start = time.perf_counter()
    key = jax.random.key(args.seed)
    radius = 0.5
    rows = []
    for row_fn in tqdm(
        _PROBLEM_ROWS, desc="problems", unit="problem", disable=not _show_progress(args)
    ):
        rows += row_fn(key, radius)
    sam = SAMTrap(n=6, T=16, learning_rate=1 / 24, radius=0.5)
    constants = {
        "SAMTrap delta1": float(sam.delta1),
        "SAMTrap lambda": float(sam.lambda_),
        "SAMTrap gamma": float(sam.gamma),
    }
    print(
        "flatjax problems: special points of arXiv 2511.03548's constructions "
        f"(float64, training sets from seed {args.seed}, drawn on the theorem's good "
        "event)"
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
    print(f"elapsed {time.perf_counter() - start:.1f} s; {_environment_line()}")
    return 0


def _add_problems_parser(commands) -> None:
    problems = commands.add_parser(
        "problems", help="print each construction's special points and risks"
    )
    problems.add_argument(
        "--seed", type=_nonnegative_int, default=0, help="training-set seed (>= 0)"
    )
    _add_common(problems)
    problems.set_defaults(run=_problems)


# ------------------------------------------------------------------------ sweep


def _check_record(path: Path) -> None:
    """Refuse an output folder whose JSON record is unreadable, naming the file.

    ``sweep.json`` and ``reproduce.json`` say which configuration a folder holds; a
    corrupt one would otherwise surface as a bare JSON error without the file.
    """
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        problem = f"{type(err).__name__}: {err}"
    else:
        if isinstance(stored, dict):
            return
        problem = f"a JSON {type(stored).__name__}, not an object"
    raise UsageError(
        f"{str(path)!r} is corrupt ({problem}): delete the folder or choose another "
        "--out"
    )


def _sweep(args) -> int:
    import jax

    from flatjax.sweep import SweepConfig, initialize_distributed, run_sweep

    distributed = (args.coordinator, args.num_processes, args.process_id)
    if args.distributed or any(x is not None for x in distributed):
        initialize_distributed(*distributed)
    _check_out(args.out)
    config = SweepConfig.from_toml(args.config)
    _check_record(Path(args.out) / "sweep.json")
    start = time.perf_counter()
    result = run_sweep(
        config,
        args.out,
        memory_budget=args.memory_budget,
        chunk_size=args.chunk_size,
        progress=_show_progress(args),
    )
    runs = cast("pd.DataFrame", result.runs)  # SweepResult types it `object`
    metrics = [
        c for c in runs.columns if c.startswith(("population_risk_tau", "saer_tau"))
    ]
    keys = [c for c in config.grid if len(set(runs[c])) > 1] or ["group"]
    columns = metrics + ["nonfinite", "projection_acted"]
    summary = cast("pd.DataFrame", runs.groupby(keys)[columns].mean())
    print(f"flatjax sweep: {len(runs)} runs of {config.problem} / {config.optimizer}")
    print("mean over seeds:")
    print(summary.map(lambda x: f"{x:.6g}").to_string())
    elapsed = time.perf_counter() - start
    print(
        f"results in {args.out}/runs.parquet; {elapsed:.1f} s in "
        f"{jax.process_count()} process(es)"
    )
    print(_environment_line())
    return 0


def _add_sweep_parser(commands) -> None:
    sweep = commands.add_parser("sweep", help="run a sweep described in a TOML file")
    sweep.add_argument("config", help="the sweep's TOML file")
    sweep.add_argument("--out", required=True, help="output folder (resumable)")
    sweep.add_argument(
        "--memory-budget",
        type=_positive_int,
        default=None,
        help="bytes per device for one chunk (default: a quarter of its memory)",
    )
    sweep.add_argument(
        "--chunk-size",
        type=_chunk_size,
        default=None,
        help="runs per chunk, or 'all' (default: from the memory budget)",
    )
    sweep.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process JAX job (jax.distributed); without the three "
        "flags below, JAX's environment variables or cluster manager define it",
    )
    sweep.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    sweep.add_argument("--num-processes", type=int, default=None, help="job size")
    sweep.add_argument("--process-id", type=int, default=None, help="this process")
    _add_common(sweep)
    sweep.set_defaults(run=_sweep)


# -------------------------------------------------------------------- reproduce


def _reproduce(args) -> int:
    import jax

    from flatjax.reproduce import reproduce

    _check_out(args.out)
    _check_record(Path(args.out) / "reproduce.json")
    start = time.perf_counter()
    experiments = reproduce(
        "full" if args.full else "quick",
        seeds=args.seeds,
        out=args.out,
        only=None if args.only is None else list(dict.fromkeys(args.only)),
        progress=_show_progress(args),
    )
    from flatjax.reproduce import exit_status, summary

    elapsed = time.perf_counter() - start
    print(
        f"flatjax reproduce: {summary(experiments)} in {elapsed:.1f} s on "
        f"{jax.device_count()} {jax.devices()[0].platform} "
        f"device(s) ({jax.devices()[0].device_kind}); "
        f"report in {args.out}/report.md"
    )
    print(_environment_line())
    for experiment in experiments:
        for check in experiment.checks:
            if check.status in ("FAIL", "INSUFFICIENT SEEDS"):
                print(f"{check.status}: {check.quantity}: {check.criterion}")
    # 0: every verdict passed (or was not informative); 1: a FAIL; 3
    # (EXIT_INSUFFICIENT_SEEDS): too few --seeds to decide some verdict.
    return exit_status(experiments)


def _add_reproduce_parser(commands) -> None:
    from flatjax.reproduce import EXPERIMENTS

    names = list(EXPERIMENTS)
    repro = commands.add_parser(
        "reproduce", help="run every theorem's experiment and write a report"
    )
    size = repro.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (default)")
    size.add_argument("--full", action="store_true", help="large sizes, for a GPU")
    repro.add_argument(
        "--seeds", type=_positive_int, default=None, help="seeds per grid point"
    )
    repro.add_argument("--out", default="results", help="output folder")
    repro.add_argument(
        "--only",
        nargs="+",
        choices=names,
        default=None,
        metavar="NAME",
        help=f"run only these experiments, among: {', '.join(names)}",
    )
    _add_common(repro)
    repro.set_defaults(run=_reproduce)


# ------------------------------------------------------------------------- main


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 0, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _chunk_size(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer or 'all', got {text!r}"
        ) from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command takes (SUPPRESS: the top-level value stays if absent)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``flatjax`` argument parser: one function per subcommand."""
    parser = _Parser(
        prog="flatjax",
        description="Flat minima and sharpness-aware optimization on exact hard "
        "instances of stochastic convex optimization (arXiv 2511.03548).",
    )
    parser.add_argument(
        "--version",
        action="store_true",
        help="print the versions of flatjax and JAX, and the device, then exit",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_problems_parser(commands)
    _add_sweep_parser(commands)
    _add_reproduce_parser(commands)
    return parser


def _version(args) -> int:
    print(_environment_line())
    return 0


def _check_out(out: str) -> None:
    if not out.strip():
        raise UsageError("--out must name a folder, got an empty string")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flatjax`` command line; returns the exit status.

    Exit status: 0 on success, 1 when ``reproduce`` has a failing check or flatjax
    hits an internal error, 2 for a user error (reported as one line on stderr), 130
    when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already reported
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.version:
        args.command, args.run = None, _version
    elif args.command is None:
        print(
            "flatjax: error: choose a command: problems, sweep or reproduce "
            "(see `flatjax --help`)",
            file=sys.stderr,
        )
        return 2
    prog = "flatjax" if args.command is None else f"flatjax {args.command}"
    try:
        _configure_jax()
        return args.run(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(
            f"{prog}: interrupted (a sweep resumes from its finished chunks)",
            file=sys.stderr,
        )
        return 130
    except (UsageError, *USER_ERRORS) as err:
        if args.debug:
            raise
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a bug: say so in one line
        if args.debug:
            raise
        # Out of memory: the size asked for, not a bug (XLA's RESOURCE_EXHAUSTED on
        # a device, MemoryError on the host).
        where = "host" if isinstance(err, MemoryError) else "device"
        if isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in str(err):
            print(
                f"{prog}: error: out of {where} memory ({_one_line(err)[:200]}); ask "
                "for fewer runs or seeds, fewer runs at once (--memory-budget or "
                "--chunk-size), or smaller sizes",
                file=sys.stderr,
            )
            return 2
        print(
            f"{prog}: internal error ({type(err).__name__}: {_one_line(err)}); this "
            "is a bug in flatjax: rerun with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
