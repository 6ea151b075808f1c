"""Argument validation shared by every flatjax subpackage (a leaf module).

Every check raises at construction or trace time with one line naming the call, the
argument and the value received, e.g. "`SAGDTrap(T=...)` must be >= 1, got 0".
Shapes and dtypes are known at trace time, so they are checked for traced arrays
too, for free. Values of traced hyperparameters (under ``jit``/``vmap``) are checked
at run time with ``equinox.error_if`` while ``runtime_checks`` is on (the default):
callers must use the value ``check_real`` returns, which carries the check.
"""

from __future__ import annotations

import contextvars
import math
import os
from collections.abc import Callable
from typing import Any, Literal, overload

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import PyTree

_FALLBACK_MAX_BYTES = 8 * 2**30

#: Largest exponent ``n`` of a construction with $2^n$ coordinates: beyond it the
#: sizes exceed any memory (and Python would build huge integers to say so).
MAX_EXPONENT = 48


def _physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS won't say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages <= 0 or page_size <= 0:
        return None
    return int(pages) * int(page_size)


#: Largest estimated size, in bytes, of one iterate plus one training set that a
#: problem constructor accepts by default: half of this machine's physical memory
#: (8 GiB where the operating system does not report it). Pass ``max_bytes=`` to a
#: constructor to change it.
DEFAULT_MAX_BYTES = (_physical_memory() or 2 * _FALLBACK_MAX_BYTES) // 2

_RUNTIME_CHECKS = contextvars.ContextVar("flatjax_runtime_checks", default=True)


class runtime_checks:
    r"""Turn flatjax's run-time checks of traced hyperparameters on or off.

    Concrete arguments are always checked when a function is called. Traced ones
    (under ``jax.jit`` or ``jax.vmap``: a learning rate, radius, $\rho$ or margin
    swept as an array) can only be checked while the program runs; flatjax does it
    with ``equinox.error_if`` (a non-finite or out-of-range value raises a runtime
    error naming the call and the argument). That is on by default and costs one
    scalar comparison per checked hyperparameter per call (``benchmarks/
    bench_checks.py`` measures it). Turn it off to run a program that really
    wants such values (e.g. a traced negative radius, which the maximizers treat
    as 0).

    The setting is read when a function is **traced**: a function already
    compiled by ``jax.jit`` keeps the checks it was traced with, so change the
    setting before its first call (or jit a fresh function). Use it as a context
    manager, which restores the previous setting on exit, or call it once to
    change the setting for the rest of the current thread or task (it is a
    ``contextvars.ContextVar``, never an environment variable).

    Args:
        enabled: whether traced hyperparameters are checked.

    Raises:
        TypeError: if ``enabled`` is not a bool.

    Examples:
        >>> import jax
        >>> import flatjax
        >>> from flatjax.problems import FlatERM
        >>> rho = jax.numpy.asarray(-0.5)
        >>> with flatjax.runtime_checks(False):
        ...     risk = jax.jit(lambda r: FlatERM(4, r).rho)(rho)
        >>> float(risk), flatjax.runtime_checks_enabled()
        (-0.5, True)
    """

    def __init__(self, enabled: bool = True):
        if not isinstance(enabled, bool):
            raise TypeError(
                f"`runtime_checks(enabled=...)` must be a bool, got {enabled!r}"
            )
        self.enabled = enabled
        self._token = _RUNTIME_CHECKS.set(enabled)

    def __enter__(self) -> runtime_checks:
        """Keep the setting for the ``with`` block."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Restore the setting in force before this one."""
        _RUNTIME_CHECKS.reset(self._token)


def runtime_checks_enabled() -> bool:
    """Whether traced hyperparameters are checked at run time (see ``runtime_checks``).

    Returns:
        The current setting (True unless ``runtime_checks(False)`` is in force).
    """
    return _RUNTIME_CHECKS.get()


def is_concrete(x) -> bool:
    """True when ``x`` is a Python number or a concrete (non-traced) array."""
    return not isinstance(x, Tracer)


def _type_name(value) -> str:
    return type(value).__name__


def check_int(
    call: str, name: str, value, minimum: int, maximum: int | None = None, why=""
) -> int:
    """Return ``value`` as an int, or raise unless ``minimum <= value <= maximum``.

    Raises:
        TypeError: for a bool, a float or anything else that is not an int.
        ValueError: for a value out of range (``why`` explains the maximum).
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{call}({name}=...)` must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{call}({name}=...)` must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{call}({name}=...)` must be <= {maximum}{why}, got {value}")
    return int(value)


def _interval(lower, upper, lower_open, upper_open) -> str:
    parts = []
    if lower is not None:
        parts.append(f"{'>' if lower_open else '>='} {lower}")
    if upper is not None:
        parts.append(f"{'<' if upper_open else '<='} {upper}")
    return " and ".join(parts)


def _real_dtype_or_raise(call: str, name: str, value) -> np.dtype:
    """The dtype of a real scalar-like ``value``; TypeError for anything else."""
    if isinstance(value, bool | np.bool_ | str | bytes) or value is None:
        raise TypeError(f"`{call}({name}=...)` must be a real number, got {value!r}")
    if isinstance(value, int | float):
        return np.dtype(type(value))
    dtype = getattr(value, "dtype", None)
    if dtype is None or not isinstance(value, jax.Array | np.ndarray | np.generic):
        raise TypeError(
            f"`{call}({name}=...)` must be a real number or a scalar array, got "
            f"{_short_repr(value)} ({_type_name(value)})"
        )
    if not (
        jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
    ) or jnp.issubdtype(dtype, jnp.bool_):
        raise TypeError(
            f"`{call}({name}=...)` must be a real number, got an array of dtype {dtype}"
        )
    return dtype


def check_real(
    call: str,
    name: str,
    value,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_open: bool = False,
    upper_open: bool = False,
):
    """Check a real scalar hyperparameter; return it (use the returned value).

    A concrete value is checked now. A traced value has its dtype and shape checked
    now and, while ``runtime_checks`` is on, its value at run time: the returned
    value is ``equinox.error_if(value, bad, message)``, so the check runs only if
    the caller computes with the returned value.

    Raises:
        TypeError: if ``value`` is not a real number or real scalar array (a bool,
            a string, None, a list, a complex number).
        ValueError: if it is not a scalar, or a concrete ``value`` is not finite or
            not in the interval.
    """
    _real_dtype_or_raise(call, name, value)
    shape = np.shape(value) if is_concrete(value) else value.shape
    if shape != ():
        raise ValueError(f"`{call}({name}=...)` must be a scalar, got shape {shape}")
    interval = _interval(lower, upper, lower_open, upper_open)
    if not is_concrete(value):
        if not runtime_checks_enabled():
            return value
        bad = jnp.logical_not(jnp.isfinite(value))
        if lower is not None:
            bad = bad | ((value <= lower) if lower_open else (value < lower))
        if upper is not None:
            bad = bad | ((value >= upper) if upper_open else (value > upper))
        condition = "finite" + (f" and {interval}" if interval else "")
        return eqx.error_if(
            value,
            bad,
            f"`{call}({name}=...)` must be {condition}, got a traced value that is "
            "not (checked at run time; `flatjax.runtime_checks(False)` turns this "
            "off)",
        )
    x = float(np.asarray(value))
    if not math.isfinite(x):
        raise ValueError(f"`{call}({name}=...)` must be finite, got {x}")
    if lower is not None and (x < lower or (lower_open and x == lower)):
        op = ">" if lower_open else ">="
        raise ValueError(f"`{call}({name}=...)` must be {op} {lower}, got {x}")
    if upper is not None and (x > upper or (upper_open and x == upper)):
        op = "<" if upper_open else "<="
        raise ValueError(f"`{call}({name}=...)` must be {op} {upper}, got {x}")
    return value


def check_dtype(call: str, dtype) -> np.dtype:
    """Return ``dtype`` as a NumPy floating dtype that JAX will really use.

    Raises:
        TypeError: if ``dtype`` is not a floating dtype.
        ValueError: if ``dtype`` is float64 but JAX's x64 mode is off (JAX would
            silently compute in float32).
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"`{call}(dtype=...)` is not a dtype: {dtype!r}") from err
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"`{call}(dtype=...)` must be a floating dtype, got {dt}")
    if dt == np.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            f"`{call}(dtype=float64)` needs JAX's 64-bit mode, which is off: call "
            "`jax.config.update('jax_enable_x64', True)` at start-up (before any "
            "array is created), or pass `dtype=jnp.float32` where float32 is accurate "
            "enough"
        )
    return dt


def _format_bytes(nbytes: int) -> str:
    """``nbytes`` for a message; sizes beyond a float's range as a power of two."""
    if nbytes.bit_length() > 1000:
        return f"about 2**{nbytes.bit_length() - 1} bytes"
    return f"about {nbytes:,} bytes ({nbytes / 2**30:.3g} GiB)"


def check_memory(call: str, nbytes: int, max_bytes: int) -> None:
    """Refuse a size whose arrays would not fit, before anything is allocated.

    Raises:
        TypeError: if ``max_bytes`` is not an int.
        ValueError: if ``nbytes`` exceeds ``max_bytes`` (sizes of any magnitude are
            reported, e.g. ``FlatERM(n=5000)``'s $2^{5000}$ coordinates).
    """
    max_bytes = check_int(call, "max_bytes", max_bytes, 1)
    if nbytes > max_bytes:
        raise ValueError(
            f"`{call}` would need {_format_bytes(int(nbytes))} for one iterate and "
            f"one training set, over the limit of {max_bytes:,} bytes (by default "
            "half of this machine's memory); pass a smaller size, or `max_bytes=` "
            "to raise the limit"
        )


def _describe(out: Any) -> str:
    """A short description of a loss output for an error message."""
    shape = getattr(out, "shape", None)
    if shape is None:
        return f"a {type(out).__name__}"
    return f"shape {tuple(shape)}"


def check_array(
    call: str,
    name: str,
    x,
    *,
    shape: tuple[int, ...] | None = None,
    expected: str = "",
) -> jax.Array:
    """Return ``x`` as a JAX array, or raise naming ``call`` and the argument ``name``.

    ``x`` must be a JAX or NumPy array (traced arrays included) of a real dtype
    (floating or integer, not bool or complex); with ``shape``, exactly that shape.

    Args:
        call: the public call, for the message.
        name: the argument's name.
        x: the value received.
        shape: the required shape, or None for any.
        expected: words explaining ``shape`` in the message (e.g. "(problem.d,)").

    Raises:
        TypeError: for a non-array (a list, a string, None, a key) or a non-real
            dtype.
        ValueError: for the wrong shape.
    """
    if not isinstance(x, jax.Array | np.ndarray):
        raise TypeError(
            f"`{call}({name}=...)` must be an array, got {_short_repr(x)} "
            f"({_type_name(x)})"
        )
    dtype = x.dtype
    if (
        jnp.issubdtype(dtype, jnp.bool_)
        or jnp.issubdtype(dtype, jax.dtypes.prng_key)
        or not (
            jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
        )
    ):
        raise TypeError(
            f"`{call}({name}=...)` must be a real (floating) array, got dtype {dtype}"
        )
    if shape is not None and tuple(x.shape) != tuple(shape):
        why = f" {expected}" if expected else ""
        raise ValueError(
            f"`{call}({name}=...)` must have shape {tuple(shape)}{why}, got shape "
            f"{tuple(x.shape)}"
        )
    return jnp.asarray(x)


def _short_repr(x) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def check_vector(call: str, name: str, w, d: int) -> jax.Array:
    """Return the parameter vector ``w`` as an array of shape ``(d,)``, or raise.

    Raises:
        TypeError: for a non-array or a non-real dtype.
        ValueError: for a shape other than ``(d,)``.
    """
    return check_array(call, name, w, shape=(d,), expected="(the problem's d)")


def check_training_set(
    call: str, problem, S, *, name: str = "S", any_count: bool = False
) -> jax.Array:
    """Return the training set ``S`` of ``problem`` as an array, or raise.

    ``S`` must have shape ``(problem.n, *problem.example_shape)``; with
    ``any_count``, any number (at least 1) of examples (e.g. a held-out set for
    ``empirical_risk``). The values are checked by ``check_in_support``.

    Raises:
        TypeError: for a non-array or a non-real dtype.
        ValueError: for the wrong shape.
    """
    example = tuple(problem.example_shape)
    S = check_array(call, name, S)
    count_ok = S.ndim >= 1 and (
        S.shape[0] >= 1 if any_count else S.shape[0] == problem.n
    )
    if not count_ok or tuple(S.shape[1:]) != example:
        count = "at least one example" if any_count else f"{problem.n} examples"
        size = "m" if any_count else f"{problem.n}"
        raise ValueError(
            f"`{call}({name}=...)` must have {count}"
            f"{'' if any_count else ' (problem.n)'} of shape {example} "
            f"(problem.example_shape), i.e. shape "
            f"({', '.join([size, *map(str, example)])}), got shape {tuple(S.shape)}"
        )
    return S


def check_in_support(call: str, problem, S, *, name: str = "S") -> jax.Array:
    """Return ``S``, refusing examples outside ``problem``'s distribution.

    ``problem.in_support(z)`` says whether one example can be drawn from the
    problem (e.g. a training set of another problem of the same shape cannot).
    Concrete ``S`` is checked now; a traced one at run time while
    ``runtime_checks`` is on (one pass over ``S``; use the returned value).

    Raises:
        ValueError: if a concrete example lies outside the support.
    """
    inside = jax.vmap(problem.in_support)(S)
    message = (
        f"`{call}({name}=...)` holds examples that {type(problem).__name__} cannot "
        "draw (a training set of another problem or distribution?)"
    )
    if is_concrete(inside):
        bad = np.flatnonzero(~np.asarray(inside))
        if bad.size:
            raise ValueError(f"{message}: example {int(bad[0])} is outside its support")
        return S
    if not runtime_checks_enabled():
        return S
    return eqx.error_if(S, jnp.logical_not(jnp.all(inside)), message)


@overload
def check_prng_key(
    call: str, key, *, name: str = ..., optional: Literal[False] = ...
) -> jax.Array: ...


@overload
def check_prng_key(
    call: str, key, *, name: str = ..., optional: bool
) -> jax.Array | None: ...


def check_prng_key(call: str, key, *, name: str = "key", optional: bool = False):
    """Return ``key``, or raise unless it is a JAX PRNG key (or None if optional).

    Accepts a typed key (``jax.random.key``) of shape () and a legacy uint32 key
    (``jax.random.PRNGKey``) of shape (2,).

    Raises:
        TypeError: for None (unless ``optional``), an int seed, a string or any
            other non-key.
        ValueError: for a batch of keys (use ``jax.vmap``) or a uint32 array of
            the wrong shape.
    """
    if key is None:
        if optional:
            return None
        raise TypeError(
            f"`{call}({name}=...)` must be a PRNG key (e.g. `jax.random.key(0)`), "
            "got None"
        )
    if not isinstance(key, jax.Array | np.ndarray):
        raise TypeError(
            f"`{call}({name}=...)` must be a PRNG key (e.g. `jax.random.key(0)`), "
            f"got {_short_repr(key)} ({_type_name(key)})"
        )
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"`{call}({name}=...)` must be one PRNG key, got a batch of shape "
                f"{key.shape} (map over keys with `jax.vmap`)"
            )
        return key
    if key.dtype == np.uint32:
        if key.shape != (2,):
            raise ValueError(
                f"`{call}({name}=...)` must be one PRNG key (a uint32 array of shape "
                f"(2,) or `jax.random.key(...)`), got shape {key.shape}"
            )
        return key
    raise TypeError(
        f"`{call}({name}=...)` must be a PRNG key (e.g. `jax.random.key(0)`), got an "
        f"array of dtype {key.dtype}"
    )


def check_scalar_loss(call: str, name: str, fn: Callable, *args) -> None:
    """Raise unless ``fn(*args)`` returns one real scalar (checked by shape only).

    Raises:
        ValueError: naming ``call`` and the argument ``name`` when the output is not a
            scalar array of a floating dtype.
        TypeError: naming them when ``fn`` fails on ``args`` (e.g. a loss of an
            array called with a dict of parameters).
    """
    try:
        out = jax.eval_shape(fn, *args)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise TypeError(
            f"`{call}({name}=...)` fails on the parameters given: "
            f"{type(err).__name__}: {first}"
        ) from err
    shape = getattr(out, "shape", None)
    dtype = getattr(out, "dtype", None)
    if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"`{call}({name}=...)` must return a real scalar, got {_describe(out)}"
            + ("" if dtype is None else f" of dtype {dtype}")
        )


def check_same_structure(call: str, name: str, tree: PyTree, reference: PyTree) -> None:
    """Raise unless ``tree`` has the structure and leaf shapes of ``reference`` (w).

    Raises:
        ValueError: naming ``call`` and the argument ``name``.
    """
    structure = jax.tree_util.tree_structure(tree)
    expected = jax.tree_util.tree_structure(reference)
    if structure != expected:
        raise ValueError(
            f"`{call}({name}=...)` must have the pytree structure of `w`, got "
            f"{structure}, expected {expected}"
        )
    shapes = [jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(tree)]
    expected_shapes = [jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(reference)]
    if shapes != expected_shapes:
        raise ValueError(
            f"`{call}({name}=...)` must have the leaf shapes of `w`, got {shapes}, "
            f"expected {expected_shapes}"
        )


def check_parameters(call: str, name: str, tree: PyTree) -> PyTree:
    """Return a parameter pytree whose leaves are all real floating arrays, or raise.

    Raises:
        TypeError: naming ``call`` and ``name`` for a leaf that is not an array (a
            string, None, a list) or not floating; ValueError for no leaves.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(
            f"`{call}({name}=...)` must hold at least one array, got {tree!r}"
        )
    for leaf in leaves:
        if not isinstance(leaf, jax.Array | np.ndarray) or not jnp.issubdtype(
            leaf.dtype, jnp.floating
        ):
            what = (
                f"dtype {leaf.dtype}"
                if isinstance(leaf, jax.Array | np.ndarray)
                else f"{_short_repr(leaf)} ({_type_name(leaf)})"
            )
            raise TypeError(
                f"`{call}({name}=...)` must be a pytree of floating arrays, got a "
                f"leaf of {what}"
            )
    return tree


def check_key(call: str, key) -> None:
    """Raise when a stochastic measure is called without a PRNG key."""
    if key is None:
        raise ValueError(
            f"`{call}(key=...)` must be a PRNG key (the estimator is random), got None"
        )


def check_examples(call: str, name: str, examples: PyTree) -> int:
    """Return the number of examples ``n`` (leading axis), or raise.

    Raises:
        ValueError: when ``examples`` has no leaves, a leaf without a leading axis,
            leaves whose leading axes differ, or zero examples.
    """
    leaves = jax.tree_util.tree_leaves(examples)
    sizes = [jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves]
    if not leaves or None in sizes or len(set(sizes)) != 1:
        raise ValueError(
            f"`{call}({name}=...)` must be a pytree of arrays sharing a leading "
            f"example axis, got leading sizes {sizes}"
        )
    n = sizes[0]
    assert n is not None  # a leaf without a leading axis was refused above
    if n < 1:
        raise ValueError(f"`{call}({name}=...)` must hold at least 1 example, got {n}")
    return n


_PARTITION_HINT = (
    "pass only the floating arrays, e.g. `params, static = eqx.partition(model, "
    "eqx.is_inexact_array)` (rebuild the model with `eqx.combine(params, static)` "
    "inside the loss), or `eqx.filter(model, eqx.is_inexact_array)`"
)


def check_float_tree(call: str, name: str, tree: PyTree) -> None:
    """Raise unless every leaf of ``tree`` is an array of a floating dtype.

    Meant for parameter and gradient pytrees that an optimizer perturbs: a whole
    ``equinox`` module (whose leaves include functions and Python numbers) or an
    integer leaf would otherwise fail deep inside JAX, or be perturbed by rounding.

    Raises:
        TypeError: naming ``call``, the argument ``name``, the leaf's path and what
            it is, with the ``eqx.partition`` / ``eqx.filter`` remedy.
    """
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        raise TypeError(f"`{call}({name}=...)` has no array leaves, got {tree!r}")
    for path, leaf in leaves:
        where = jax.tree_util.keystr(path) or "(root)"
        if not isinstance(leaf, jax.Array | np.ndarray):
            raise TypeError(
                f"`{call}({name}=...)` must be a pytree of floating arrays, but the "
                f"leaf {where} is a {type(leaf).__name__} ({leaf!r:.60}); "
                + _PARTITION_HINT
            )
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"`{call}({name}=...)` must be a pytree of floating arrays, but the "
                f"leaf {where} has dtype {leaf.dtype}; keep integer and boolean "
                "state out of the optimized parameters: " + _PARTITION_HINT
            )


def check_gradient_output(
    call: str, name: str, gradient: PyTree, params: PyTree
) -> None:
    """Raise unless ``gradient`` (the argument ``name``) is shaped like ``params``.

    For a gradient passed to an optimizer (``name="updates"``) or returned by its
    ``grad_fn`` (``name="grad_fn"``).

    Raises:
        TypeError: when ``gradient`` is a ``(value, gradient)`` pair (a
            ``jax.value_and_grad`` used where ``jax.grad`` is needed), or has a leaf
            that is not a floating array.
        ValueError: when the structure or the leaf shapes differ from ``params``.
    """
    structure = jax.tree_util.tree_structure(gradient)
    expected = jax.tree_util.tree_structure(params)
    if structure != expected:
        if (
            isinstance(gradient, tuple)
            and len(gradient) == 2
            and jax.tree_util.tree_structure(gradient[1]) == expected
        ):
            raise TypeError(
                f"`{call}({name}=...)` is a (value, gradient) pair: "
                + (
                    "pass a function of the parameters that returns the gradient "
                    "only, e.g. `jax.grad(loss)` or `lambda p: value_and_grad(p)[1]`"
                    if name == "grad_fn"
                    else "pass the gradient only, e.g. `value_and_grad(p)[1]`"
                )
            )
        raise ValueError(
            f"`{call}({name}=...)` must have the pytree structure of `params`, got "
            f"{structure}, expected {expected}"
        )
    check_float_tree(call, name, gradient)
    shapes = [jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(gradient)]
    expected_shapes = [jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(params)]
    if shapes != expected_shapes:
        raise ValueError(
            f"`{call}({name}=...)` must have leaves shaped like `params`, got "
            f"{shapes}, expected {expected_shapes}"
        )


def check_real_array(
    call: str,
    name: str,
    value,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_open: bool = False,
    upper_open: bool = False,
):
    """``check_real`` for an array of hyperparameters, elementwise (any shape).

    Raises:
        TypeError: for a non-array or a non-real dtype.
        ValueError: for a concrete entry that is not finite or not in the interval.
    """
    value = check_array(call, name, value)
    interval = _interval(lower, upper, lower_open, upper_open)
    bad = jnp.logical_not(jnp.isfinite(value))  # NaN fails every interval too
    if lower is not None:
        bad = bad | ((value <= lower) if lower_open else (value < lower))
    if upper is not None:
        bad = bad | ((value >= upper) if upper_open else (value > upper))
    if lower is not None and upper is not None:
        left, right = "(" if lower_open else "[", ")" if upper_open else "]"
        condition = f"lie in {left}{lower:g}, {upper:g}{right}"
    else:
        condition = "be finite" + (f" and {interval}" if interval else "")
    if is_concrete(value):
        found = np.asarray(value)[np.asarray(bad)]
        if found.size:
            raise ValueError(
                f"`{call}({name}=...)` must {condition} everywhere, got "
                f"{float(found.flat[0])}"
            )
        return value
    if not runtime_checks_enabled():
        return value
    return eqx.error_if(
        value,
        jnp.any(bad),
        f"`{call}({name}=...)` must {condition} everywhere, got a traced value "
        "that is not (checked at run time; `flatjax.runtime_checks(False)` turns "
        "this off)",
    )
