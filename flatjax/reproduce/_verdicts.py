"""The verdict machinery of ``flatjax reproduce``: checks, statuses, intervals, figures.

A new experiment is one module with one function ``name(settings) -> Experiment``,
registered in ``_registry.EXPERIMENTS``. It builds its verdicts with ``make_check``
(one measured quantity over seeds against the theorem, with a ``kind`` from
``KINDS``, a criterion derived from the theorem, and the fewest seeds the verdict
needs), ``frequency_check`` (an event frequency, Wilson interval) or
``informative_upper_check`` (an upper bound reported as a verdict only where it is
below the trivial bound over the domain). Sizes come from ``settings.mode``
(``"tiny"``: tests and the mutation suite, seconds; ``"quick"``: ``make run`` on a
2-core CPU; ``"full"``: larger sizes for a GPU).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..sweep import SweepConfig, run_sweep

if TYPE_CHECKING:
    import pandas as pd

#: The kinds of verdict, each with the question it answers.
KINDS: dict[str, str] = {
    "exact": "a deterministic quantity equals the theorem's closed form or the "
    "paper's reference value",
    "lower bound": "the measured quantity is at least the theorem's lower bound",
    "tightness": "the measured quantity is at most the factor above the lower bound "
    "that the proof's own dynamics allow (catches a bound made too weak)",
    "upper bound": "the measured quantity is at most the theorem's upper bound, "
    "which is below the trivial bound over the domain (else: not informative)",
    "rate": "a fitted exponent against the theorem's rate",
    "frequency": "an event's frequency against the theorem's probability",
    "control": "outside the theorem's hypotheses the effect vanishes (or the "
    "hypothesis is seen to break)",
    "report": "informational: no theorem gives a criterion, so the row is never "
    "PASS or FAIL (e.g. how well a flatness measure ranks the risk)",
}

PASS, FAIL = "PASS", "FAIL"
NOT_INFORMATIVE = "NOT INFORMATIVE"
INSUFFICIENT = "INSUFFICIENT SEEDS"
REPORT = "REPORT"
STATUSES = (PASS, FAIL, NOT_INFORMATIVE, INSUFFICIENT, REPORT)

#: Independent training sets drawn per event-frequency verdict (sampling only, cheap),
#: per mode.
FREQUENCY_DRAWS = {"tiny": 2000, "quick": 20000, "full": 100000}

_Z95 = 1.959963984540054
_Z999 = 3.2905267314919255


@dataclasses.dataclass
class Check:
    """One verdict: a measured quantity against the theory, with its criterion.

    Attributes:
        quantity: what is measured (with the sizes).
        kind: one of ``KINDS``.
        measured: the mean over seeds (or the single value, or the frequency).
        half_width: the half-width of the 95% interval (Student t over seeds, or
            Wilson for a frequency); ``None`` when there is no interval (one value,
            or every seed gave the same value).
        low: the smallest value over seeds (the lower end of a frequency's interval).
        high: the largest value over seeds (the upper end of a frequency's interval).
        samples: seeds (or draws) behind the value.
        theory: what the theorem (or the paper's reference values) predicts.
        criterion: the rule that decides the verdict, derived from the theorem.
        status: ``PASS``, ``FAIL``, ``NOT INFORMATIVE``, ``INSUFFICIENT SEEDS`` or
            ``REPORT`` (kind ``"report"``: no criterion).
        proportion: the value is a frequency (printed with its interval).
    """

    quantity: str
    kind: str
    measured: float
    half_width: float | None
    low: float
    high: float
    samples: int
    theory: str
    criterion: str
    status: str
    proportion: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`Check(kind=...)` must be one of {list(KINDS)}")
        if self.status not in STATUSES:
            raise ValueError(f"`Check(status=...)` must be one of {STATUSES}")
        if (self.kind == "report") != (self.status == REPORT):
            raise ValueError(
                "`Check`: kind 'report' goes with status REPORT and only with it, "
                f"got kind {self.kind!r} and status {self.status!r}"
            )

    @property
    def passed(self) -> bool:
        """Whether the verdict is PASS."""
        return self.status == PASS

    @property
    def failed(self) -> bool:
        """Whether the verdict is FAIL."""
        return self.status == FAIL


@dataclasses.dataclass
class Experiment:
    """The outcome of one experiment.

    Attributes:
        name: the registry name.
        title: the report's heading.
        checks: the verdicts.
        figures: the PNG files written.
        tables: name -> pandas DataFrame, written as ``<name>.parquet``.
        seconds: wall time.
        notes: sentences printed under the heading (what is outside the proof,
            which sizes, ...).
    """

    name: str
    title: str
    checks: list[Check]
    figures: list[Path]
    tables: dict
    seconds: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of a reproduction.

    Attributes:
        mode: ``"tiny"`` (tests and the mutation suite), ``"quick"`` (a 2-core CPU,
            a few minutes) or ``"full"`` (larger sizes, meant for a GPU).
        seeds: training sets per grid point (experiments on large instances cap it;
            the report says where).
        out: output folder.
        progress: progress bars.
    """

    mode: str
    seeds: int
    out: Path
    progress: bool

    @property
    def quick(self) -> bool:
        """Whether the small sizes are used (``"tiny"`` or ``"quick"``)."""
        return self.mode in ("tiny", "quick")

    @property
    def tiny(self) -> bool:
        """Whether the smallest sizes (tests only) are used."""
        return self.mode == "tiny"

    def pick(self, tiny, quick, full):
        """The value for this mode."""
        return {"tiny": tiny, "quick": quick, "full": full}[self.mode]

    @property
    def frequency_draws(self) -> int:
        """Training sets drawn per event-frequency verdict."""
        return FREQUENCY_DRAWS[self.mode]


def student_t_quantile(samples: int) -> float:
    """The 97.5% quantile of Student's t with ``samples - 1`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, samples - 1))


def mean_ci(values) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% Student-t interval over seeds.

    ``None`` (no interval) for one value, or when every value is the same to a
    relative 1e-12 (a deterministic quantity up to float64 rounding: an interval
    of that width would only measure the rounding).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    mean = float(values.mean())
    scale = float(np.max(np.abs(values))) if values.size else 0.0
    if values.size < 2 or float(np.ptp(values)) <= 1e-12 * scale:
        return mean, None
    spread = float(values.std(ddof=1))
    return mean, student_t_quantile(values.size) * spread / math.sqrt(values.size)


def wilson_interval(
    successes: int, trials: int, z: float = _Z95
) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default)."""
    p = successes / trials
    z2 = z**2
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    spread = math.sqrt(p * (1 - p) / trials + z2 / (4 * trials**2))
    half = z * spread / (1 + z2 / trials)
    return centre - half, centre + half


def make_check(
    quantity: str,
    kind: str,
    values,
    theory: str,
    passed,
    criterion: str,
    *,
    min_seeds: int = 1,
) -> Check:
    """A verdict on ``values`` (one per seed); INSUFFICIENT SEEDS below ``min_seeds``.

    Args:
        quantity: what is measured.
        kind: one of ``KINDS``.
        values: the measured values, one per seed (or one number).
        theory: the prediction, in words and numbers.
        passed: whether the criterion holds.
        criterion: the rule.
        min_seeds: the fewest values the criterion can be decided on (e.g. 2 for a
            Student-t interval).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    mean, half = mean_ci(values)
    status = PASS if bool(passed) else FAIL
    if values.size < min_seeds:
        status = INSUFFICIENT
        criterion = f"{criterion} (needs >= {min_seeds} seeds, got {values.size})"
    return Check(
        quantity,
        kind,
        mean,
        half,
        float(values.min()),
        float(values.max()),
        int(values.size),
        theory,
        criterion,
        status,
    )


def frequency_check(
    quantity: str,
    events,
    probability: float,
    theorem: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    kind: str = "frequency",
) -> Check:
    """An event frequency against the exact ``probability`` and the theorem's bound.

    PASS when the 99.9% Wilson interval contains the exact ``probability`` and lies
    above ``minimum`` (the theorem's guarantee) or below ``maximum`` (a control);
    INSUFFICIENT SEEDS when the draws are too few for such an interval to clear the
    bound (it would then straddle it whatever the code does). The 99.9% level keeps
    the false-FAIL rate of a correct implementation at 1 in 1000 per verdict.
    """
    limit = minimum if minimum is not None else maximum
    if limit is None or (minimum is not None and maximum is not None):
        raise ValueError(
            f"`frequency_check({quantity!r})` needs exactly one of `minimum` and "
            f"`maximum`, got minimum={minimum}, maximum={maximum}"
        )
    events = np.asarray(events, dtype=bool).reshape(-1)
    trials = events.size
    successes = int(events.sum())
    low, high = wilson_interval(successes, trials, _Z999)
    margin = abs(probability - limit)
    needed = math.ceil((2 * _Z999) ** 2 * probability * (1 - probability) / margin**2)
    inside = low <= probability <= high
    clear = low >= limit if minimum is not None else high <= limit
    status = PASS if inside and clear else FAIL
    side = (
        f"lower end >= {minimum:.4g}"
        if minimum is not None
        else (f"upper end <= {maximum:.4g}")
    )
    criterion = f"99.9% Wilson interval contains {probability:.5f} and its {side}"
    if trials < needed:
        status = INSUFFICIENT
        criterion += f" (needs >= {needed} draws, got {trials})"
    return Check(
        quantity,
        kind,
        successes / trials,
        (high - low) / 2,
        low,
        high,
        trials,
        f"exact {probability:.5f}; {theorem}",
        criterion,
        status,
        proportion=True,
    )


def upper_check_and_row(
    quantity: str,
    values,
    bound: float,
    trivial: float,
    theory: str,
    *,
    column: str = "measured",
    **row,
) -> tuple[Check, dict]:
    """``informative_upper_check`` and the figure's row for the same numbers.

    The row is ``row`` with the mean of ``values`` under ``column`` and ``bound``
    under ``"bound"``, so the figure draws exactly what the verdict judged.
    """
    check = informative_upper_check(quantity, values, bound, trivial, theory)
    mean = float(np.mean(np.asarray(values, dtype=np.float64)))
    return check, {**row, column: mean, "bound": bound}


def informative_upper_check(
    quantity: str,
    values,
    bound: float,
    trivial: float,
    theory: str,
) -> Check:
    """An upper bound as a verdict only where it is informative.

    PASS when the mean's one-sided 95% Student-t upper end is at most ``bound``,
    FAIL otherwise; NOT INFORMATIVE (whatever the measurement) when ``bound`` is
    not below ``trivial``, the largest value the quantity can take over the domain;
    INSUFFICIENT SEEDS with one seed (no interval).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    mean, half = mean_ci(values)
    upper = mean + (half or 0.0)
    theory = f"{theory} = {fmt(bound)} (trivial bound {fmt(trivial)})"
    if bound >= trivial:
        check = make_check(quantity, "upper bound", values, theory, True, "")
        return dataclasses.replace(
            check,
            criterion="bound >= trivial bound over the domain: no verdict",
            status=NOT_INFORMATIVE,
        )
    return make_check(
        quantity,
        "upper bound",
        values,
        theory,
        upper <= bound,
        "95% upper end of the mean <= bound < trivial bound",
        min_seeds=2,
    )


def fmt(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits (``-`` for None)."""
    if x is None:
        return "-"
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.{digits}g}"


def format_value(check: Check) -> str:
    """``mean ± half-width`` with the mean rounded where the interval's 2 digits end.

    A frequency is printed with its interval ``[low, high]``; a quantity with no
    interval as its value (and ``(all N equal)`` when several seeds agree exactly).
    """
    if check.proportion:
        return f"{check.measured:.4f} [{check.low:.4f}, {check.high:.4f}]"
    if check.half_width is None:
        suffix = f" (all {check.samples} equal)" if check.samples > 1 else ""
        if check.samples > 1 and check.low != check.high:
            suffix = f" (all {check.samples} equal to 1e-12)"
        return f"{fmt(check.measured, 6)}{suffix}"
    half = check.half_width
    exponent = math.floor(math.log10(half)) if half > 0 else 0
    decimals = max(0, 1 - exponent)
    if decimals > 12 or abs(check.measured) >= 1e5 or abs(check.measured) < 1e-3:
        return f"{fmt(check.measured)} ± {fmt(half, 2)}"
    return f"{check.measured:.{decimals}f} ± {half:.{decimals}f}"


def run_sweep_runs(settings: Settings, folder: str, **config) -> pd.DataFrame:
    """The runs table of a sweep stored under ``out/data/folder`` (resumable)."""
    config.setdefault("seeds", settings.seeds)
    return run_sweep(
        SweepConfig(**config),
        settings.out / "data" / folder,
        progress=settings.progress,
    ).runs


def log_slope(xs, ys) -> float:
    """The least-squares slope of log(ys) against log(xs)."""
    return float(
        np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)[0]
    )


def save_figure(
    settings: Settings,
    name: str,
    draw: Callable,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    size=(6.4, 4.0),
) -> Path:
    """Draw one figure with labelled axes and the legend outside the data.

    ``draw(ax)`` plots labelled artists; this sets the labels and the title, puts
    the legend to the right of the axes (never over a curve) and writes
    ``out/<name>.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, constrained_layout=True)
    draw(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    path = settings.out / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
