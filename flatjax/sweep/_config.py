"""Declarative sweep configuration: problems, optimizers, grids, validation."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import jax.numpy as jnp

from ..optim import ALGORITHMS, FunctionMaximizer, QuadraticMaximizer, make_optimizer
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

#: The optimizers a sweep can name, with their (traced) hyperparameters: the one
#: table ``flatjax.optim.ALGORITHMS`` (name -> ``Algorithm(factory, hyperparameters,
#: ...)``), not a copy of it.
OPTIMIZERS = ALGORITHMS


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
        if not isinstance(self.grid, Mapping):
            _fail("grid", f"must be a mapping of names to values, got {self.grid!r}")
        for name, kind in (("record", str), ("suffix_starts", int)):
            value = getattr(self, name)
            if value is None and name == "suffix_starts":
                continue
            if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
                _fail(name, f"must be a list of {kind.__name__}s, got {value!r}")
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

        The schema is strict: ``[sweep]`` holds the keys of this class (booleans as
        TOML booleans, integers as TOML integers, lists as arrays); ``[grid]`` maps
        each hyperparameter to a number or an array of numbers (integers where the
        value is a size, such as ``n`` or ``T``; a float accepts an integer).

        Raises:
            ValueError: for a file that cannot be read or is not UTF-8 TOML, an
                unknown table or key (with the nearest valid name), a value of the
                wrong type, or a bad value; the message names the file, the table
                and the key.
        """
        path = Path(path)
        where = f"sweep config {str(path)!r}"
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise ValueError(f"{where} does not exist") from None
        except IsADirectoryError:
            raise ValueError(f"{where} is a folder, not a TOML file") from None
        except OSError as err:
            raise ValueError(f"{where} cannot be read: {err.strerror}") from None
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{where} is not UTF-8 text (byte {err.object[err.start]:#04x} at "
                f"offset {err.start})"
            ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{where} is not valid TOML: {err}") from None
        for table in data:
            if table not in ("sweep", "grid"):
                raise ValueError(
                    f"{where}: unknown table [{table}]"
                    f"{_did_you_mean(table, _TABLES, '[{}]')}; "
                    "expected [sweep] and [grid]"
                )
            if not isinstance(data[table], dict):
                raise ValueError(
                    f"{where}: `{table}` must be a table [{table}], got {data[table]!r}"
                )
        section = data.get("sweep", {})
        grid = data.get("grid", {})
        for key, value in section.items():
            if key not in _SWEEP_SCHEMA:
                hint = (
                    " (the grid is its own [grid] table)"
                    if key == "grid"
                    else _did_you_mean(key, _SWEEP_SCHEMA)
                )
                raise ValueError(
                    f"{where}, [sweep]: unknown key {key!r}{hint}; valid keys are "
                    f"{sorted(_SWEEP_SCHEMA)}"
                )
            problem = _toml_type_error(value, _SWEEP_SCHEMA[key])
            if problem:
                raise ValueError(f"{where}, [sweep] {key}: {problem}")
        for required in ("problem", "optimizer", "seeds"):
            if required not in section:
                raise ValueError(f"{where}, [sweep]: missing required key {required!r}")
        for key, value in grid.items():
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if isinstance(v, bool) or not _is_number(v)]
            if bad or isinstance(value, dict):
                raise ValueError(
                    f"{where}, [grid] {key}: must be a number or an array of numbers, "
                    f"got {value!r}"
                )
        try:
            return cls(grid=grid, **section)
        except _ConfigError as err:
            table = "grid" if err.field == "grid" else "sweep"
            key = err.key or ("" if table == "grid" else err.field)
            location = f"[{table}] {key}" if key else f"[{table}]"
            raise ValueError(f"{where}, {location}: {err.detail}") from None


_TABLES = ("sweep", "grid")

#: [sweep] keys and their TOML types: "str", "int", "bool", "[int]", "[str]".
_SWEEP_SCHEMA = {
    "problem": "str",
    "optimizer": "str",
    "seeds": "int",
    "seed": "int",
    "steps": "int",
    "maximizer": "str",
    "conditioned": "bool",
    "suffix_starts": "[int]",
    "record": "[str]",
    "curve_every": "int",
    "population": "bool",
    "block_size": "int",
}

_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "bool": "a boolean (true or false)",
    "[int]": "an array of integers",
    "[str]": "an array of strings",
}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _matches(value, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, list) and all(_matches(v, kind[1:-1]) for v in value)


def _toml_type_error(value, kind: str) -> str | None:
    """Why a TOML value is not of ``kind``, or None when it is."""
    if _matches(value, kind):
        return None
    return f"must be {_TYPE_NAMES[kind]}, got {value!r} ({_toml_type_name(value)})"


def _toml_type_name(value) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string"}
    names.update({list: "array", dict: "table"})
    return names.get(type(value), type(value).__name__)


def _did_you_mean(name: str, choices, form: str = "{!r}") -> str:
    """A hint naming the nearest of ``choices`` to ``name``, or an empty string."""
    by_lower = {str(c).lower(): str(c) for c in choices}  # case is a common slip
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=2)
    names = " or ".join(form.format(by_lower[c]) for c in close)
    return f" (did you mean {names}?)" if close else ""


def _as_tuple(value):
    if isinstance(value, list | tuple):
        return value
    return (value,)


class _ConfigError(ValueError):
    """A bad configuration value; ``field`` and ``key`` say where (for TOML files)."""

    def __init__(self, field: str, detail: str, key: str | None = None):
        separator = ": " if detail.startswith("`") else " "
        super().__init__(f"`SweepConfig({field}=...)`{separator}{detail}")
        self.field, self.detail, self.key = field, detail, key


def _fail(name: str, message: str, key: str | None = None):
    raise _ConfigError(name, message, key)


def _check_int_field(config: SweepConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, f"must be an int >= {minimum}, got {value!r}")


def validate(config: SweepConfig) -> None:
    """Check a configuration completely, before any compute starts.

    Raises:
        ValueError: for a bad name, type or value of any field (wrong types
            included, so that one exception class covers every bad configuration);
            the message names the field, e.g. ``SweepConfig(seeds=...)``, and the
            value received.
    """
    for name in ("problem", "optimizer"):
        if not isinstance(getattr(config, name), str):
            _fail(name, f"must be a string, got {getattr(config, name)!r}")
    if config.problem not in PROBLEMS:
        _fail(
            "problem",
            f"must be one of {sorted(PROBLEMS)}, got {config.problem!r}"
            + _did_you_mean(config.problem, PROBLEMS),
        )
    if config.optimizer not in OPTIMIZERS:
        _fail(
            "optimizer",
            f"must be one of {sorted(OPTIMIZERS)}, got {config.optimizer!r}"
            + _did_you_mean(config.optimizer, OPTIMIZERS),
        )
    _check_int_field(config, "seeds", 1)
    _check_int_field(config, "seed", 0)
    _check_int_field(config, "block_size", 1)
    _check_int_field(config, "curve_every", 1)
    if config.steps is not None:
        _check_int_field(config, "steps", 1)
    for name in ("conditioned", "population"):
        if not isinstance(getattr(config, name), bool):
            _fail(name, f"must be a bool, got {getattr(config, name)!r}")
    if config.maximizer is not None and not isinstance(config.maximizer, str):
        _fail("maximizer", f"must be a string or None, got {config.maximizer!r}")
    bad_records = [r for r in config.record if r not in _RECORDS]
    if bad_records or not config.record:
        _fail(
            "record", f"must be a non-empty subset of {_RECORDS}, got {config.record}"
        )
    for name in config.grid:
        if not isinstance(name, str):
            _fail("grid", f"keys must be strings, got {name!r}")
    spec = PROBLEMS[config.problem]
    optimizer_args = OPTIMIZERS[config.optimizer].hyperparameters
    known = set(spec.static) | set(spec.traced) | set(optimizer_args) | {"steps"}
    for name, values in config.grid.items():
        if name not in known:
            _fail(
                "grid",
                f"has unknown hyperparameter {name!r}{_did_you_mean(name, known)} for "
                f"problem {config.problem!r} and optimizer {config.optimizer!r}; valid "
                f"names are {sorted(known)}",
                key=name,
            )
        if len(values) == 0:
            _fail("grid", f"has an empty list of values for {name!r}", key=name)
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
                f"{config.maximizer!r}" + _did_you_mean(config.maximizer, choices),
            )
    elif config.optimizer == "sa_gd":
        _fail("maximizer", "must name an exact maximizer for optimizer 'sa_gd'")
    for group in static_groups(config):
        steps = group["steps"]
        if config.suffix_starts is not None and any(
            isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= steps
            for s in config.suffix_starts
        ):
            _fail(
                "suffix_starts",
                f"must be ints in [1, steps={steps}], got {config.suffix_starts}",
            )
        for point in traced_points(config):
            try:
                build_problem(config, group, point)
                build_optimizer(config, point)
            except (TypeError, ValueError) as err:
                if isinstance(err, _ConfigError):
                    raise
                # The problem's or optimizer's own message names its argument, which
                # is the grid key: `LeastSquares(n=...)` must be >= 1, got 0.
                named = re.search(r"\((\w+)=\.\.\.\)`", str(err))
                key = (
                    named.group(1)
                    if named and named.group(1) in point | group
                    else None
                )
                raise _ConfigError("grid", str(err), key) from None


def static_groups(config: SweepConfig) -> list[dict[str, int]]:
    """The compiled groups: every combination of static values, with ``steps``."""
    spec = PROBLEMS[config.problem]
    names = [n for n in (*spec.static, "steps") if n in config.grid]
    groups = []
    for values in itertools.product(*(config.grid[n] for n in names)):
        group = dict(zip(names, values, strict=True))
        for name, value in group.items():
            if isinstance(value, bool) or not isinstance(value, int):
                _fail(
                    "grid",
                    f"value of static {name!r} must be an int, got {value!r}",
                    key=name,
                )
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
                _fail(
                    "grid", f"value of {name!r} must be a number, got {value!r}", name
                )
            if not math.isfinite(value):
                _fail("grid", f"value of {name!r} must be finite, got {value!r}", name)
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
    return make_optimizer(
        config.optimizer,
        **{n: point[n] for n in OPTIMIZERS[config.optimizer].hyperparameters},
    )
