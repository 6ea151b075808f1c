"""Argument validation shared by every flatjax subpackage (a leaf module).

Every check raises at construction or trace time with one line naming the call, the
argument and the value received, e.g. "`SAGDTrap(T=...)` must be >= 1, got 0".
Traced values (under ``jit``/``vmap``) pass the concrete-only checks untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

#: Largest estimated size, in bytes, of one iterate plus one training set that a
#: problem constructor accepts by default (8 GiB). Pass ``max_bytes=`` to change it.
DEFAULT_MAX_BYTES = 8 * 2**30


def is_concrete(x) -> bool:
    """True when ``x`` is a Python number or a concrete (non-traced) array."""
    return not isinstance(x, jax.core.Tracer)


def check_int(call: str, name: str, value, minimum: int) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{call}({name}=...)` must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{call}({name}=...)` must be >= {minimum}, got {value}")
    return int(value)


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
    """Check a real hyperparameter when it is concrete; traced values pass through.

    Raises:
        ValueError: if a concrete ``value`` is not a finite scalar in the interval.
    """
    if not is_concrete(value):
        return value
    arr = np.asarray(value)
    if arr.shape != ():
        raise ValueError(
            f"`{call}({name}=...)` must be a scalar, got shape {arr.shape}"
        )
    x = float(arr)
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


def check_memory(call: str, nbytes: int, max_bytes: int) -> None:
    """Refuse a size whose arrays would not fit, before anything is allocated."""
    if nbytes > max_bytes:
        raise ValueError(
            f"`{call}` would need about {nbytes:,} bytes ({nbytes / 2**30:.3g} GiB) "
            f"for one iterate and one training set, over the limit of {max_bytes:,} "
            "bytes; pass a smaller size, or `max_bytes=` to raise the limit"
        )


def _describe(out: Any) -> str:
    """A short description of a loss output for an error message."""
    shape = getattr(out, "shape", None)
    if shape is None:
        return f"a {type(out).__name__}"
    return f"shape {tuple(shape)}"


def check_scalar_loss(call: str, name: str, fn: Callable, *args) -> None:
    """Raise unless ``fn(*args)`` returns one real scalar (checked by shape only).

    Raises:
        ValueError: naming ``call`` and the argument ``name`` when the output is not a
            scalar array of a floating dtype.
    """
    out = jax.eval_shape(fn, *args)
    shape = getattr(out, "shape", None)
    dtype = getattr(out, "dtype", None)
    if shape != () or not jnp.issubdtype(dtype, jnp.floating):
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
