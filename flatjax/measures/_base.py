"""Shared machinery of the measures: flat loss views, estimates, probe chunks."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import check_int

#: Bytes the default chunk of probes may hold (256 MiB). Without ``probe_batch``, a
#: stochastic estimator evaluates ``DEFAULT_PROBE_MEMORY // (8 * d * itemsize)``
#: probes at once (at least 1, at most 64 and ``num_probes``): a Hessian-vector
#: product of a ``jax.flatten_util`` vector keeps about 8 parameter-sized vectors
#: (7 measured by XLA's memory analysis on a 1.1M-parameter MLP, see
#: ``benchmarks/bench_measures.py``).
DEFAULT_PROBE_MEMORY = 2**28


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


def resolve_probe_batch(
    call: str, probe_batch: int | None, num_probes: int, w: PyTree
) -> int:
    """The chunk size: ``probe_batch`` checked, or chosen from the memory budget.

    The default keeps about ``DEFAULT_PROBE_MEMORY`` bytes of probe-sized vectors
    (8 per probe) for the parameters ``w``; it is capped at 64 and ``num_probes``.
    """
    if probe_batch is None:
        leaves = jax.tree_util.tree_leaves(w)
        size = sum(int(np.size(leaf)) for leaf in leaves)
        itemsize = max((jnp.asarray(leaf).dtype.itemsize for leaf in leaves), default=8)
        probe_batch = max(1, min(64, DEFAULT_PROBE_MEMORY // (8 * size * itemsize)))
    probe_batch = check_int(call, "probe_batch", probe_batch, 1)
    return min(probe_batch, num_probes)


def map_probes(
    sample_fn: Callable[[PRNGKeyArray], PyTree],
    key: PRNGKeyArray,
    num_probes: int,
    probe_batch: int,
) -> PyTree:
    r"""``sample_fn(fold_in(key, i))`` for $i < $ ``num_probes``, in chunks.

    Probe $i$ draws from its own key ``jax.random.fold_in(key, i)``, so the result
    does not depend on the chunking. ``jax.lax.map(..., batch_size=probe_batch)``
    evaluates ``probe_batch`` probes at once (a ``vmap``) and the chunks one after
    another (a ``scan``): the program is compiled once for the chunk's shape, and
    its working memory is that of ``probe_batch`` probes, not ``num_probes``.

    Returns:
        The outputs stacked along a leading axis of size ``num_probes``.
    """
    indices = jnp.arange(num_probes)

    def one(i):
        return sample_fn(jax.random.fold_in(key, i))

    if probe_batch >= num_probes:
        return jax.vmap(one)(indices)
    return jax.lax.map(one, indices, batch_size=probe_batch)
