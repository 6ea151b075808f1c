"""``flatjax reproduce``: run every experiment, print verdicts, write the report."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import jax

from .._environment import environment
from ._registry import EXPERIMENTS, run_experiment
from ._verdicts import (
    FAIL,
    INSUFFICIENT,
    KINDS,
    STATUSES,
    Experiment,
    Settings,
    format_value,
)

#: Default seeds per mode (experiments on large instances use fewer; see the report).
DEFAULT_SEEDS = {"tiny": 8, "quick": 1000, "full": 10000}

#: Exit status of ``flatjax reproduce`` when no verdict failed but at least one could
#: not be decided with the seeds given (``--seeds`` too small).
EXIT_INSUFFICIENT_SEEDS = 3


def exit_status(experiments: Sequence[Experiment]) -> int:
    """0 when no verdict failed and none lacked seeds, 1 on a FAIL, else 3.

    NOT INFORMATIVE verdicts (an upper bound above the trivial bound at the sizes
    run) and REPORT rows (no criterion) do not change the status.
    """
    statuses = {c.status for e in experiments for c in e.checks}
    if FAIL in statuses:
        return 1
    if INSUFFICIENT in statuses:
        return EXIT_INSUFFICIENT_SEEDS
    return 0


def summary(experiments: Sequence[Experiment]) -> str:
    """One line counting the verdicts by status, e.g. ``58 PASS, 2 NOT INFORMATIVE``."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for experiment in experiments:
        for check in experiment.checks:
            counts[check.status] += 1
    total = sum(counts.values())
    parts = [f"{count} {status}" for status, count in counts.items() if count]
    return f"{total} checks: " + ", ".join(parts)


def format_experiment(experiment: Experiment) -> str:
    """The terminal table of one experiment: verdict, kind, value, theory, criterion."""
    lines = [f"== {experiment.title} ({experiment.seconds:.1f} s)"]
    lines += [f"   note: {note}" for note in experiment.notes]
    for check in experiment.checks:
        lines.append(
            f"[{check.status}] ({check.kind}) {check.quantity}: "
            f"{format_value(check)}  (n={check.samples})"
        )
        lines.append(f"      theory: {check.theory}")
        lines.append(f"      criterion: {check.criterion}")
    return "\n".join(lines)


def _markdown(
    experiments: list[Experiment], settings: Settings, elapsed: float, env: dict
) -> str:
    lines = [
        "# flatjax reproduce: arXiv 2511.03548",
        "",
        f"Mode `{settings.mode}`, {settings.seeds} seeds per grid point (fewer where "
        f"a table says so), float64, {env['device_count']} {env['platform']} "
        f"device(s) ({env['device_kind']}), {elapsed:.1f} s. {summary(experiments)}.",
        "",
        "Versions: "
        + ", ".join(
            f"{k} {env[k]}"
            for k in ("flatjax", "jax", "jaxlib", "optax", "equinox", "numpy", "python")
        )
        + " (also in `report.json`).",
        "",
        "Kinds of verdict:",
        "",
    ]
    lines += [f"- **{kind}**: {meaning}." for kind, meaning in KINDS.items()]
    lines += [
        "",
        "Values are means over seeds with the half-width of a 95% Student-t "
        "interval; a value printed alone is one number or identical over all "
        "seeds; a frequency is printed with its 95% Wilson interval.",
        "",
    ]
    for experiment in experiments:
        lines += [f"## {experiment.title}", "", f"{experiment.seconds:.1f} s.", ""]
        lines += [f"- {note}" for note in experiment.notes]
        if experiment.notes:
            lines.append("")
        lines += [
            "| verdict | kind | quantity | measured | theory | criterion |",
            "|---|---|---|---|---|---|",
        ]
        for c in experiment.checks:
            verdict = c.status if c.status != FAIL else "**FAIL**"
            lines.append(
                f"| {verdict} | {c.kind} | {c.quantity} | {format_value(c)} "
                f"(n={c.samples}) | {c.theory} | {c.criterion} |"
            )
        lines.append("")
        for figure in experiment.figures:
            lines += [f"![{figure.stem}]({figure.name})", ""]
    return "\n".join(lines)


def reproduce(
    mode: str = "quick",
    *,
    seeds: int | None = None,
    out: str | Path = "results",
    only: Sequence[str] | None = None,
    progress: bool | None = None,
    echo=print,
) -> list[Experiment]:
    """Run the experiments of arXiv 2511.03548 and write a report to ``out``.

    Every verdict has a kind (``KINDS``) and a criterion derived from the theorem,
    and a status: PASS, FAIL, REPORT (kind "report": no criterion), NOT INFORMATIVE
    (an upper bound above the trivial bound at the sizes run) or INSUFFICIENT SEEDS
    (too few seeds to decide it; ``exit_status`` then returns
    ``EXIT_INSUFFICIENT_SEEDS``).

    Args:
        mode: ``"quick"`` (a few minutes on a 2-core CPU), ``"full"`` (larger
            sizes, meant for a GPU) or ``"tiny"`` (the smallest sizes, for tests).
        seeds: seeds per grid point (default 1000 quick, 10000 full, 8 tiny).
        out: output folder: ``report.md``, ``report.json`` (verdicts and versions),
            PNG figures, ``checks.parquet``, the experiments' tables, and the
            sweeps' data in ``data/`` (resumable).
        only: experiment names (default all: ``EXPERIMENTS``).
        progress: progress bars (default: when stderr is a TTY).
        echo: where to print each experiment's table.

    Returns:
        The experiments, each with its checks.

    Raises:
        ValueError: for an unknown mode or experiment, ``seeds < 1``, float64
            disabled, or an output folder holding another configuration; before
            any compute.
    """
    import pandas as pd

    if mode not in DEFAULT_SEEDS:
        raise ValueError(
            f"`reproduce(mode=...)` must be 'quick', 'full' or 'tiny', got {mode!r}"
        )
    seeds = DEFAULT_SEEDS[mode] if seeds is None else seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"`reproduce(seeds=...)` must be an int >= 1, got {seeds!r}")
    names = list(EXPERIMENTS) if not only else list(only)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(
            f"`reproduce(only=...)`: unknown experiment(s) {unknown}; choose from "
            f"{list(EXPERIMENTS)}"
        )
    if not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "reproduce needs float64: call jax.config.update('jax_enable_x64', True)"
        )
    out = Path(out)
    identity = {"mode": mode, "seeds": seeds}
    marker = out / "reproduce.json"
    if marker.exists():
        stored = json.loads(marker.read_text())
        if stored != identity:
            raise ValueError(
                f"output folder {str(out)!r} holds a reproduction with {stored}, not "
                f"{identity}: choose another --out or delete it"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(identity))
    except OSError as err:
        raise ValueError(f"output folder {str(out)!r} is not writable: {err}") from None
    settings = Settings(mode, seeds, out, bool(progress))
    start = time.perf_counter()
    experiments = []
    for name in names:
        experiment = run_experiment(name, settings)
        experiments.append(experiment)
        echo(format_experiment(experiment))
        echo("")
        for table_name, table in experiment.tables.items():
            table.to_parquet(out / f"{table_name}.parquet", index=False)
    elapsed = time.perf_counter() - start
    records = [
        {"experiment": e.name, **dataclasses.asdict(c)}
        for e in experiments
        for c in e.checks
    ]
    pd.DataFrame(records).to_parquet(out / "checks.parquet", index=False)
    env = environment()
    (out / "report.md").write_text(_markdown(experiments, settings, elapsed, env))
    report = {
        "mode": mode,
        "seeds": seeds,
        "seconds": elapsed,
        "environment": env,
        "summary": summary(experiments),
        "exit_status": exit_status(experiments),
        "experiments": [
            {
                "name": e.name,
                "title": e.title,
                "seconds": e.seconds,
                "notes": e.notes,
                "figures": [f.name for f in e.figures],
            }
            for e in experiments
        ],
        "checks": records,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    return experiments
