"""Shared machinery of the measures: flat loss views, estimates, argument checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PyTree


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
