"""The inner-maximization protocol: ball maximizers and the SAER they evaluate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

MaximizerMethod = Literal["closed_form", "exact", "lower_bound"]
MaximizerMethod.__doc__ = """How a maximum over the ball was obtained.

``"closed_form"``: a formula from the paper; ``"exact"``: an exact solver or an exact
maximizer supplied by a problem; ``"lower_bound"``: the best value a numerical search
found, a lower bound on the true maximum. Read it from ``AbstractMaximizer.method``
and ``SAERResult.method``.
"""


class AbstractMaximizer(eqx.Module):
    r"""A maximizer of $v \mapsto F(w + v)$ over the ball $\|v\| \le r$.

    Call it as ``maximizer(w, radius) -> v``: ``v`` has the structure of the parameter
    pytree ``w`` and global $\ell_2$ norm at most ``radius``. Subclasses set the class
    attribute ``method`` to say how good ``v`` is (see ``MaximizerMethod``).
    Maximizers are ``equinox`` modules, so they can be passed through ``jax.jit`` and
    ``jax.vmap`` like any pytree.
    """

    method: ClassVar[MaximizerMethod]

    def __call__(self, w: PyTree, radius: Float[Array, ""] | float) -> PyTree:
        r"""Return a maximizing perturbation $v$ with $\|v\|\le$ ``radius``."""
        raise NotImplementedError


class FunctionMaximizer(AbstractMaximizer):
    """Wraps a function ``(w, radius) -> v`` that is an exact maximizer.

    Use it for maximizers a problem knows in closed form (e.g.
    ``SAGDTrap.adversarial_maximizer``).

    Attributes:
        fn: the maximizer function.
    """

    fn: Callable[[Any, Any], Any]
    method: ClassVar[MaximizerMethod] = "exact"

    def __call__(self, w: PyTree, radius: Float[Array, ""] | float) -> PyTree:
        """Evaluate the wrapped function."""
        return self.fn(w, radius)


class SAERResult(NamedTuple):
    r"""The SAER $F^r(w) = \max_{\|v\|\le r} F(w + v)$ and its provenance.

    Attributes:
        value: $F(w + v)$ at the returned perturbation: $F^r(w)$ when ``method`` is
            ``"closed_form"`` or ``"exact"``, a lower bound on it for
            ``"lower_bound"``.
        perturbation: the perturbation $v$ (same structure as $w$).
        method: how the maximum was obtained (a Python string, static under ``jit``).
    """

    value: Float[Array, ""]
    perturbation: PyTree
    method: MaximizerMethod


def tree_norm(tree: PyTree) -> Float[Array, ""]:
    r"""Global $\ell_2$ norm of a pytree of arrays."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def saer(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    radius: Float[Array, ""] | float,
    maximizer: AbstractMaximizer,
) -> SAERResult:
    r"""Evaluate the sharpness-aware risk $F^r(w) = \max_{\|v\|\le r} F(w+v)$.

    The SAER of arXiv 2511.03548 (Section 2).

    Args:
        loss_fn: $F$, a scalar function of the parameter pytree.
        w: the parameters.
        radius: $r \ge 0$.
        maximizer: an ``AbstractMaximizer`` for ``loss_fn``.

    Returns:
        A ``SAERResult`` whose ``method`` is the maximizer's.

    Examples:
        >>> import jax.numpy as jnp
        >>> m = FunctionMaximizer(lambda w, r: r * jnp.sign(w + (w == 0)))
        >>> saer(lambda w: 0.5 * jnp.sum(w**2), jnp.array([1.0]), 0.5, m).value
        Array(1.125, dtype=float64)
    """
    v = maximizer(w, radius)
    perturbed = jax.tree_util.tree_map(jnp.add, w, v)
    return SAERResult(loss_fn(perturbed), v, type(maximizer).method)
