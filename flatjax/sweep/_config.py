"""Declarative sweep configuration: problems, optimizers, grids, validation."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp

from ..optim import FunctionMaximizer, QuadraticMaximizer, gd, sa_gd, sam
from ..problems import (
    ClassicERM,
    FlatERM,
    LeastSquares,
    SAGDTrap,
    SAMSharp,
    SAMTrap,
    SquaredHinge,
)


@dataclasses.dataclass(frozen=True)
class _ProblemSpec:
    cls: type
    static: tuple[str, ...]
    traced: tuple[str, ...]


#: The problems a sweep can name: static (shape-determining) and traced arguments.
PROBLEMS: dict[str, _ProblemSpec] = {
    "FlatERM": _ProblemSpec(FlatERM, ("n",), ("rho",)),
    "ClassicERM": _ProblemSpec(ClassicERM, ("n",), ()),
    "SAGDTrap": _ProblemSpec(SAGDTrap, ("n", "T"), ("rho",)),
    "SAMSharp": _ProblemSpec(SAMSharp, ("n",), ()),
    "SAMTrap": _ProblemSpec(SAMTrap, ("n", "T"), ("learning_rate", "radius", "delta")),
    "LeastSquares": _ProblemSpec(LeastSquares, ("d", "n"), ()),
    "SquaredHinge": _ProblemSpec(SquaredHinge, ("d", "n"), ("margin",)),
}

#: The optimizers a sweep can name, with their (traced) hyperparameters.
OPTIMIZERS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "gd": (lambda learning_rate: gd(learning_rate), ("learning_rate",)),
    "sam": (
        lambda learning_rate, radius: sam(learning_rate, radius),
        ("learning_rate", "radius"),
    ),
    "usam": (
        lambda learning_rate, radius: sam(learning_rate, radius, ascent="unnormalized"),
        ("learning_rate", "radius"),
    ),
    "asam": (
        lambda learning_rate, radius: sam(learning_rate, radius, ascent="adaptive"),
        ("learning_rate", "radius"),
    ),
    "sa_gd": (
        lambda learning_rate, radius: sa_gd(learning_rate, radius),
        ("learning_rate", "radius"),
    ),
}


def _adversarial(problem, S):
    return FunctionMaximizer(problem.adversarial_maximizer(S))


def _extra_coordinate(problem, S):
    return FunctionMaximizer(problem.extra_coordinate_maximizer())


def _increasing(problem, S):
    # SAMSharp's loss is non-decreasing: v = +r is an exact maximizer everywhere.
    return FunctionMaximizer(lambda w, r: jnp.full_like(w, r))


def _least_squares_quadratic(problem, S):
    # F_S(w) = 1/2 (w - w*)^T H (w - w*) with H = X^T X / n: the trust-region solver
    # is exact.
    X = S[:, :-1]
    hessian = X.T @ X / problem.n
    return QuadraticMaximizer(hessian, -hessian @ problem.w_star)


#: Exact maximizers a sweep can name, per problem.
MAXIMIZERS: dict[str, dict[str, Callable]] = {
    "SAGDTrap": {"adversarial": _adversarial, "extra_coordinate": _extra_coordinate},
    "SAMSharp": {"increasing": _increasing},
    "LeastSquares": {"quadratic": _least_squares_quadratic},
}

_RECORDS = ("suffix", "final", "curves")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A declarative sweep: one problem, one optimizer, a grid and a number of seeds.

    Grid values of the problem's static arguments (sizes such as ``n``, ``T``,
    ``d``) and ``steps`` split the sweep into compiled groups; every other
    hyperparameter (``learning_rate``, ``radius``, ``rho``, ...) is traced, so all
    its values and all seeds of a group run as one jitted, vmapped program.

    Attributes:
        problem: a name in ``PROBLEMS``.
        optimizer: a name in ``OPTIMIZERS``.
        grid: hyperparameter name -> tuple of values (each a list in TOML).
        seeds: runs per grid point, each with its own training set.
        seed: the sweep seed; run keys derive from (seed, group, run index) only.
        steps: iterates per run $T$ (default: the grid's ``T``); may also be a grid
            key.
        maximizer: an exact maximizer by name (``MAXIMIZERS``), needed by
            ``sa_gd``; it also makes the runs record the SAER.
        conditioned: draw training sets on the theorem's good event where the
            problem defines one.
        suffix_starts: 1-based suffix-average starts (default: 1 and $T$).
        record: what to keep: ``"suffix"`` (metrics of the suffix averages),
            ``"final"`` (metrics of the last iterate), ``"curves"`` (per-step
            metrics every ``curve_every`` steps, in a second table).
        curve_every: subsampling of the curves.
        population: record population risks (Monte Carlo where not exact).
        block_size: runs vectorized together; results do not depend on the chunk
            size or device count, but they may differ in the last bit for another
            block size, so it is part of the configuration.
    """

    problem: str
    optimizer: str
    grid: Mapping[str, tuple]
    seeds: int
    seed: int = 0
    steps: int | None = None
    maximizer: str | None = None
    conditioned: bool = True
    suffix_starts: tuple[int, ...] | None = None
    record: tuple[str, ...] = ("suffix", "final")
    curve_every: int = 1
    population: bool = True
    block_size: int = 16

    def __post_init__(self):
        object.__setattr__(
            self, "grid", {k: tuple(_as_tuple(v)) for k, v in dict(self.grid).items()}
        )
        object.__setattr__(self, "record", tuple(self.record))
        if self.suffix_starts is not None:
            object.__setattr__(self, "suffix_starts", tuple(self.suffix_starts))
        validate(self)

    def to_dict(self) -> dict:
        """The configuration as plain JSON-able data."""
        data = dataclasses.asdict(self)
        data["grid"] = {k: list(v) for k, v in self.grid.items()}
        return data

    def fingerprint(self) -> str:
        """A hash of everything that determines the results."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepConfig:
        """Read a configuration from a TOML file (``[sweep]`` and ``[grid]`` tables).

        Raises:
            ValueError: for a file that does not parse, an unknown key, or a bad value.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"sweep config {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ValueError(
                f"sweep config {str(path)!r} is not valid TOML: {err}"
            ) from None
        unknown_tables = set(data) - {"sweep", "grid"}
        if unknown_tables:
            raise ValueError(
                f"sweep config {str(path)!r}: unknown table(s) "
                f"{sorted(unknown_tables)}; "
                "expected [sweep] and [grid]"
            )
        fields = {f.name for f in dataclasses.fields(cls)} - {"grid"}
        section = dict(data.get("sweep", {}))
        unknown = set(section) - fields
        if unknown:
            raise ValueError(
                f"sweep config {str(path)!r}: unknown key(s) {sorted(unknown)} "
                "in [sweep]; "
                f"valid keys are {sorted(fields)}"
            )
        for required in ("problem", "optimizer", "seeds"):
            if required not in section:
                raise ValueError(
                    f"sweep config {str(path)!r}: [sweep] needs `{required}`"
                )
        return cls(grid=data.get("grid", {}), **section)


def _as_tuple(value):
    if isinstance(value, list | tuple):
        return value
    return (value,)


def _fail(name: str, message: str):
    raise ValueError(f"`SweepConfig({name}=...)` {message}")


def validate(config: SweepConfig) -> None:
    """Check a configuration completely, before any compute starts."""
    if config.problem not in PROBLEMS:
        _fail("problem", f"must be one of {sorted(PROBLEMS)}, got {config.problem!r}")
    if config.optimizer not in OPTIMIZERS:
        _fail(
            "optimizer",
            f"must be one of {sorted(OPTIMIZERS)}, got {config.optimizer!r}",
        )
    if (
        isinstance(config.seeds, bool)
        or not isinstance(config.seeds, int)
        or config.seeds < 1
    ):
        _fail("seeds", f"must be an int >= 1, got {config.seeds!r}")
    if not isinstance(config.block_size, int) or config.block_size < 1:
        _fail("block_size", f"must be an int >= 1, got {config.block_size!r}")
    if not isinstance(config.curve_every, int) or config.curve_every < 1:
        _fail("curve_every", f"must be an int >= 1, got {config.curve_every!r}")
    bad_records = set(config.record) - set(_RECORDS)
    if bad_records or not config.record:
        _fail(
            "record", f"must be a non-empty subset of {_RECORDS}, got {config.record}"
        )
    spec = PROBLEMS[config.problem]
    _, optimizer_args = OPTIMIZERS[config.optimizer]
    known = set(spec.static) | set(spec.traced) | set(optimizer_args) | {"steps"}
    for name, values in config.grid.items():
        if name not in known:
            _fail(
                "grid",
                f"has unknown hyperparameter {name!r} for problem {config.problem!r} "
                f"and optimizer {config.optimizer!r}; valid names are {sorted(known)}",
            )
        if len(values) == 0:
            _fail("grid", f"has an empty list of values for {name!r}")
    missing = [a for a in (*spec.static, *optimizer_args) if a not in config.grid]
    if config.problem == "SAMTrap":
        missing += [a for a in ("learning_rate", "radius") if a not in config.grid]
    if missing:
        _fail("grid", f"needs values for {sorted(set(missing))}")
    if config.steps is None and "steps" not in config.grid and "T" not in config.grid:
        _fail("steps", "must be given (or a grid value of `steps` or `T`)")
    if config.maximizer is not None:
        choices = MAXIMIZERS.get(config.problem, {})
        if config.maximizer not in choices:
            _fail(
                "maximizer",
                f"must be one of {sorted(choices)} for {config.problem}, got "
                f"{config.maximizer!r}",
            )
    elif config.optimizer == "sa_gd":
        _fail("maximizer", "must name an exact maximizer for optimizer 'sa_gd'")
    for group in static_groups(config):
        steps = group["steps"]
        if config.suffix_starts is not None and any(
            not isinstance(s, int) or s < 1 or s > steps for s in config.suffix_starts
        ):
            _fail(
                "suffix_starts",
                f"must be ints in [1, steps={steps}], got {config.suffix_starts}",
            )
        for point in traced_points(config):
            build_problem(config, group, point)  # raises the problem's own ValueError
            build_optimizer(config, point)


def static_groups(config: SweepConfig) -> list[dict[str, int]]:
    """The compiled groups: every combination of static values, with ``steps``."""
    spec = PROBLEMS[config.problem]
    names = [n for n in (*spec.static, "steps") if n in config.grid]
    groups = []
    for values in itertools.product(*(config.grid[n] for n in names)):
        group = dict(zip(names, values, strict=True))
        for name, value in group.items():
            if isinstance(value, bool) or not isinstance(value, int):
                _fail("grid", f"value of static {name!r} must be an int, got {value!r}")
        if "steps" not in group:
            group["steps"] = config.steps if config.steps is not None else group["T"]
        groups.append(group)
    return groups


def traced_points(config: SweepConfig) -> list[dict[str, float]]:
    """Every combination of the traced hyperparameter values."""
    spec = PROBLEMS[config.problem]
    names = sorted(n for n in config.grid if n not in (*spec.static, "steps"))
    points = []
    for values in itertools.product(*(config.grid[n] for n in names)):
        point = dict(zip(names, values, strict=True))
        for name, value in point.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                _fail("grid", f"value of {name!r} must be a number, got {value!r}")
            if not math.isfinite(value):
                _fail("grid", f"value of {name!r} must be finite, got {value!r}")
        points.append({k: float(v) for k, v in point.items()})
    return points


def build_problem(config: SweepConfig, group: Mapping, point: Mapping):
    """The problem of one grid point (arguments may be traced)."""
    spec = PROBLEMS[config.problem]
    kwargs = {n: group[n] for n in spec.static}
    kwargs.update({n: point[n] for n in spec.traced if n in point})
    return spec.cls(**kwargs)


def build_optimizer(config: SweepConfig, point: Mapping):
    """The optimizer of one grid point (hyperparameters may be traced)."""
    factory, names = OPTIMIZERS[config.optimizer]
    return factory(**{n: point[n] for n in names})
