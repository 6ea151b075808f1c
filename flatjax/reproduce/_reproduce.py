"""``flatjax reproduce``: run every experiment, print verdicts, write the report."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import jax

from ._registry import EXPERIMENTS, run_experiment
from ._verdicts import Experiment, Settings

#: Default seeds per mode (experiments on large instances use fewer; see the report).
DEFAULT_SEEDS = {"quick": 1000, "full": 10000}


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def format_experiment(experiment: Experiment) -> str:
    """The terminal table of one experiment."""
    header = f"{'quantity':48} {'measured (95% CI)':>26}  {'theory':34} verdict"
    lines = [
        f"== {experiment.title} ({experiment.seconds:.1f} s)",
        header,
        "-" * len(header),
    ]
    for check in experiment.checks:
        measured = f"{_fmt(check.measured)} ± {_fmt(check.half_width)}"
        verdict = "PASS" if check.passed else "FAIL"
        lines.append(f"{check.quantity:48} {measured:>26}  {check.theory:34} {verdict}")
        lines.append(f"{'':48} {'':>26}  criterion: {check.criterion}")
    return "\n".join(lines)


def _markdown(experiments: list[Experiment], settings: Settings, elapsed: float) -> str:
    device = jax.devices()[0]
    lines = [
        "# flatjax reproduce: arXiv 2511.03548",
        "",
        f"Mode `{settings.mode}`, {settings.seeds} seeds (fewer where noted in the "
        f"data), float64, {jax.device_count()} {device.platform} device(s) "
        f"({device.device_kind}), {elapsed:.1f} s.",
        "",
    ]
    for experiment in experiments:
        lines += [f"## {experiment.title}", "", f"{experiment.seconds:.1f} s.", ""]
        lines += [
            "| quantity | measured (mean ± 95% CI) | theory | criterion | verdict |",
            "|---|---|---|---|---|",
        ]
        for c in experiment.checks:
            verdict = "PASS" if c.passed else "**FAIL**"
            lines.append(
                f"| {c.quantity} | {_fmt(c.measured)} ± {_fmt(c.half_width)} | "
                f"{c.theory} | {c.criterion} | {verdict} |"
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

    Args:
        mode: ``"quick"`` (about 2 minutes on a 2-core CPU) or ``"full"`` (larger
            sizes, meant for a GPU).
        seeds: seeds per grid point (default 1000 quick, 10000 full).
        out: output folder: ``report.md``, PNG figures, ``checks.parquet``, the
            experiments' tables, and the sweeps' data in ``data/`` (resumable).
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
            f"`reproduce(mode=...)` must be 'quick' or 'full', got {mode!r}"
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
    checks = pd.DataFrame(
        [
            {"experiment": e.name, **dataclasses.asdict(c)}
            for e in experiments
            for c in e.checks
        ]
    )
    checks.to_parquet(out / "checks.parquet", index=False)
    (out / "report.md").write_text(_markdown(experiments, settings, elapsed))
    return experiments
