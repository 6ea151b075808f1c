r"""A loss averaged over a dataset's batches: PyHessian's dataloader mode."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._checks import check_examples


class BatchedLoss(eqx.Module):
    r"""$L(w) = \frac1B\sum_{b=1}^B \ell(w, S_b)$: a loss averaged over $B$ batches.

    A callable ``params -> loss``, so every measure accepts it where it accepts a
    loss. The batches are stacked along a leading axis; ``__call__`` maps over them
    with ``jax.lax.map`` and rematerializes each batch's forward pass
    (``jax.checkpoint``), so a gradient or Hessian-vector product holds one batch's
    activations at a time, not the dataset's. With equal batch sizes the mean of the
    batch means is the mean over the whole dataset.

    The batches are array fields of an ``equinox.Module``: measures compiled once
    (they are ``eqx.filter_jit``-ed with the loss as an argument) run again on new
    batches of the same shapes without recompiling. ``loss_fn`` is static: pass the
    same function object each time.

    Attributes:
        loss_fn: $\ell(w, S_b)$, the mean loss of one batch, a real scalar.
        batches: a pytree of arrays whose leading axis indexes the $B \ge 1$ batches.
    """

    loss_fn: Callable[[PyTree, PyTree], Float[Array, ""]] = eqx.field(static=True)
    batches: PyTree

    def __call__(self, params: PyTree) -> Float[Array, ""]:
        """The mean over the batches of ``loss_fn(params, batch)``."""

        @jax.checkpoint
        def one(batch):
            return self.loss_fn(params, batch)

        return jnp.mean(jax.lax.map(one, self.batches))


def _stack(call: str, batches: Iterable[PyTree]) -> PyTree:
    """Stack an iterable of equally shaped batches along a new leading axis."""
    batches = list(batches)
    if not batches:
        raise ValueError(f"`{call}(batches=...)` must hold at least 1 batch, got 0")
    structure = jax.tree_util.tree_structure(batches[0])
    shapes = [np.shape(leaf) for leaf in jax.tree_util.tree_leaves(batches[0])]
    for index, batch in enumerate(batches[1:], start=1):
        other = [np.shape(leaf) for leaf in jax.tree_util.tree_leaves(batch)]
        if jax.tree_util.tree_structure(batch) != structure or other != shapes:
            raise ValueError(
                f"`{call}(batches=...)` must hold batches of one structure and shape "
                f"(drop or pad the last batch), got shapes {shapes} for batch 0 and "
                f"{other} for batch {index}"
            )
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *batches)


def batched_loss(
    loss_fn: Callable[[PyTree, PyTree], Float[Array, ""]],
    batches: PyTree | Iterable[PyTree],
) -> BatchedLoss:
    r"""The loss $w\mapsto\frac1B\sum_b \ell(w, S_b)$ over a dataset's batches.

    The counterpart of PyHessian's ``dataloader`` argument (Yao et al. 2020), which
    averages Hessian-vector products over a dataset's batches: every flatjax measure
    takes a loss ``params -> scalar``, and this turns a per-batch loss and the
    batches into one. Because a Hessian-vector product is linear in the loss, the
    measures of the average loss are PyHessian's dataset-level measures.

    Args:
        loss_fn: $\ell(w, S_b)$, the mean loss of one batch.
        batches: either the batches stacked along a leading axis (an array, or a
            pytree of arrays sharing that axis, e.g. a tuple ``(inputs, labels)`` of
            shapes ``(B, b, ...)`` and ``(B, b)``), or a list or iterator of equally
            shaped batches (a generator, a data loader), which is stacked in
            memory. A tuple or dict is always read as stacked arrays.

    Returns:
        A ``BatchedLoss``.

    Raises:
        TypeError: if ``loss_fn`` is not callable.
        ValueError: if there is no batch, stacked arrays lack a shared leading
            axis, or the batches differ in structure or shape
            (a last, smaller batch must be dropped or padded, since unequal batches
            would not average to the dataset's mean).

    References:
        Yao, Gholami, Keutzer, Mahoney (2020), "PyHessian: Neural Networks Through
        the Lens of the Hessian", IEEE BigData (the ``dataloader`` mode).

    Examples:
        >>> import jax.numpy as jnp
        >>> def loss_fn(w, batch):
        ...     x, y = batch
        ...     return 0.5 * jnp.mean((x * w - y) ** 2)
        >>> batches = [(jnp.array([1.0, 2.0]), jnp.zeros(2)),
        ...            (jnp.array([3.0, 4.0]), jnp.zeros(2))]
        >>> loss = batched_loss(loss_fn, batches)
        >>> float(loss(1.0))  # 0.5 * mean(1, 4, 9, 16)
        3.75
    """
    call = "batched_loss"
    if not callable(loss_fn):
        raise TypeError(
            f"`{call}(loss_fn=...)` must be callable, got {type(loss_fn).__name__}"
        )
    if isinstance(batches, list) or (
        isinstance(batches, Iterable)
        and not isinstance(batches, tuple | dict | np.ndarray | jax.Array)
    ):
        return BatchedLoss(loss_fn, _stack(call, batches))
    check_examples(call, "batches", batches)
    return BatchedLoss(loss_fn, jax.tree_util.tree_map(jnp.asarray, batches))
