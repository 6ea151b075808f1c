"""Shared machinery of the measures: flat loss views, estimates, argument checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PyTree


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


def flatten_loss(
    loss_fn: Callable[[PyTree], Float[Array, ""]], w: PyTree
) -> tuple[Float[Array, " d"], Callable[[Array], PyTree], Callable[[Array], Array]]:
    r"""The parameters as one vector $x_0$, the inverse map, and $x \mapsto L(x)$.

    ``jax.flatten_util.ravel_pytree`` concatenates the leaves (``None`` leaves of an
    ``equinox.partition`` are empty), so every measure works on a flat vector and on
    a network's parameters alike.
    """
    x0, unravel = ravel_pytree(w)

    def flat_loss(x: Array) -> Array:
        return loss_fn(unravel(x))

    return x0, unravel, flat_loss


def hessian_vector_product(
    loss_fn: Callable[[PyTree], Float[Array, ""]], w: PyTree
) -> tuple[Float[Array, " d"], Callable[[Array], PyTree], Callable[[Array], Array]]:
    r"""$u \mapsto \nabla^2 L(w)\,u$ on the flattened parameters, never forming $H$.

    Forward-over-reverse: ``jax.linearize`` of the gradient evaluates the forward and
    backward pass once; each product then costs about one more gradient.

    Returns:
        ``(x0, unravel, hvp)``: the flat parameters, the map back to the pytree, and
        the Hessian-vector product on flat vectors.
    """
    x0, unravel, flat_loss = flatten_loss(loss_fn, w)
    _, hvp = jax.linearize(jax.grad(flat_loss), x0)
    return x0, unravel, hvp


def bisect_largest(
    passes: Callable[[Array], Array], top: Float[Array, ""], num_bisections: int
) -> tuple[Array, Array, Array]:
    """Bisection for the largest ``x`` in ``[0, top]`` with ``passes(x)`` true.

    ``passes`` is assumed true below its crossing and false above (a monotone
    predicate); ``x = 0`` is never tested. ``num_bisections`` fixed steps (a
    ``fori_loop``) leave a bracket of width ``top / 2**num_bisections``, then
    ``passes(top)`` decides whether the crossing lies inside ``[0, top]`` at all.

    Returns:
        ``(value, upper, bracketed)``: the largest passing point tested (0 if none;
        ``top`` when ``top`` passes), the smallest failing one above it (``inf``
        when ``top`` passes), and whether ``top`` fails.
    """

    def step(_, bracket):
        lower, upper = bracket
        middle = 0.5 * (lower + upper)
        ok = passes(middle)
        return jnp.where(ok, middle, lower), jnp.where(ok, upper, middle)

    lower, upper = jax.lax.fori_loop(
        0, num_bisections, step, (jnp.zeros_like(top), top)
    )
    saturated = passes(top)
    return (
        jnp.where(saturated, top, lower),
        jnp.where(saturated, jnp.inf, upper),
        jnp.logical_not(saturated),
    )


class Estimate(NamedTuple):
    """A Monte Carlo estimate and its standard error.

    Attributes:
        value: the estimate (unbiased unless the function says otherwise).
        stderr: its standard error, from the spread of independent samples (NaN when
            there is a single sample).
    """

    value: Float[Array, ""]
    stderr: Float[Array, ""]


def mean_and_stderr(samples: Float[Array, " m"]) -> tuple[Array, Array]:
    """Sample mean and its standard error (NaN for one sample)."""
    m = samples.shape[0]
    mean = jnp.mean(samples)
    if m < 2:
        return mean, jnp.full_like(mean, jnp.nan)
    return mean, jnp.std(samples, ddof=1) / jnp.sqrt(m)
