"""The verdict machinery of ``flatjax reproduce``: checks, experiments, helpers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..sweep import SweepConfig, run_sweep


@dataclasses.dataclass
class Check:
    """One verdict: a measured quantity against the theory, with its criterion."""

    quantity: str
    measured: float
    half_width: float
    theory: str
    passed: bool
    criterion: str


@dataclasses.dataclass
class Experiment:
    """The outcome of one experiment."""

    name: str
    title: str
    checks: list[Check]
    figures: list[Path]
    tables: dict
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of a reproduction: ``quick`` for a 2-core CPU, ``full`` for a GPU."""

    mode: str
    seeds: int
    out: Path
    progress: bool

    @property
    def quick(self) -> bool:
        """Whether the small sizes are used."""
        return self.mode == "quick"


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% normal interval over seeds."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(
        1.96 * values.std(ddof=1) / math.sqrt(values.size)
    )


def make_check(quantity, values, theory, passed, criterion) -> Check:
    mean, half = mean_ci(values)
    return Check(quantity, mean, half, theory, bool(passed), criterion)


def run_sweep_runs(settings: Settings, folder: str, **config) -> object:
    config.setdefault("seeds", settings.seeds)
    return run_sweep(
        SweepConfig(**config),
        settings.out / "data" / folder,
        progress=settings.progress,
    ).runs


def log_slope(xs, ys) -> float:
    return float(
        np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0]
    )


def save_figure(settings: Settings, name: str, draw: Callable) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.6), constrained_layout=True)
    draw(ax)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path = settings.out / f"{name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
