r"""Worst-case sharpness: SAER gap, $\rho$-flatness radius, Keskar's sharpness."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from .._checks import (
    check_int,
    check_key,
    check_real,
    check_same_structure,
    check_scalar_loss,
)
from ..optim import AbstractMaximizer, AscentMaximizer, MaximizerMethod, saer
from ._base import bisect_largest, flatten_loss


def _resolve_maximizer(
    call: str,
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    maximizer: AbstractMaximizer | None,
    key: PRNGKeyArray | None,
) -> AbstractMaximizer:
    """The given maximizer, or projected gradient ascent with restarts; checked."""
    if maximizer is None:
        if key is None:
            raise ValueError(
                f"`{call}(key=...)` must be a PRNG key when `maximizer` is None (the "
                "default maximizer, projected gradient ascent, starts at random "
                "points), got None"
            )
        maximizer = AscentMaximizer(loss_fn, key)
    if not isinstance(maximizer, AbstractMaximizer):
        raise TypeError(
            f"`{call}(maximizer=...)` must be an AbstractMaximizer or None, got "
            f"{type(maximizer).__name__}"
        )
    perturbation = jax.eval_shape(maximizer, w, jnp.ones(()))
    check_same_structure(call, "maximizer", perturbation, w)
    return maximizer


def _add(w: PyTree, v: PyTree) -> PyTree:
    return jax.tree_util.tree_map(jnp.add, w, v)


class SAERGap(NamedTuple):
    r"""The SAER gap $F^r(w) - F(w)$ and how the maximum was obtained.

    ``method`` is a Python string, static metadata: map or compile a function
    returning this result with ``eqx.filter_vmap`` / ``eqx.filter_jit`` (plain
    ``jax.vmap`` and ``jax.jit`` accept only array outputs), or return its array
    fields.

    Attributes:
        value: the gap $F^r(w) - F(w) \ge 0$; a lower bound on it when ``method`` is
            ``"lower_bound"``.
        saer: $F^r(w) = \max_{\|v\|\le r} F(w+v)$ (or its lower bound).
        loss: $F(w)$.
        perturbation: the maximizing $v$, structured like $w$.
        method: ``"closed_form"``, ``"exact"`` or ``"lower_bound"`` (static string).
    """

    value: Float[Array, ""]
    saer: Float[Array, ""]
    loss: Float[Array, ""]
    perturbation: PyTree
    method: MaximizerMethod


def saer_gap(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    radius: Float[Array, ""] | float,
    maximizer: AbstractMaximizer | None = None,
    *,
    key: PRNGKeyArray | None = None,
) -> SAERGap:
    r"""The paper's sharpness $F^r(w) - F(w)$, $F^r(w)=\max_{\|v\|\le r}F(w+v)$.

    The sharpness-aware empirical risk of arXiv 2511.03548 (§2.2, the SAM objective
    of Foret et al. 2021) minus the loss. A minimizer $w$ is *sharp* in the paper's
    sense (§2.3, Theorem 1(ii)) when the gap is $\ge \frac12\delta^2$ for all radii
    $\delta$; at a minimizer of a 1-smooth loss $\frac12 r^2$ is the largest possible
    gap.

    Maximizing a convex function over a ball is not a convex program, so the result
    says how the maximum was obtained. With a lower-bound maximizer the perturbation
    $v = 0$ is feasible, so the reported maximum is at least $F(w)$ and the gap is
    never negative.

    Args:
        loss_fn: $F$, a scalar function of the parameter pytree.
        w: the parameters (any pytree of floating arrays).
        radius: the perturbation radius $r > 0$ (may be traced).
        maximizer: an ``AbstractMaximizer`` of ``loss_fn`` over the ball, e.g. a
            problem's exact maximizer wrapped in ``FunctionMaximizer``. When None,
            projected gradient ascent with restarts (``AscentMaximizer``, a lower
            bound) started from ``key``.
        key: PRNG key for the default maximizer; unused when ``maximizer`` is given.

    Returns:
        A ``SAERGap``.

    Raises:
        ValueError: if ``loss_fn`` is not scalar-valued, ``radius`` is not positive,
            the maximizer's output is not structured like ``w``, or ``maximizer`` and
            ``key`` are both None.

    References:
        Foret, Kleiner, Mobahi, Neyshabur (2021), "Sharpness-Aware Minimization for
        Efficiently Improving Generalization", ICLR. Schliserman, Vansover-Hager,
        Koren, arXiv 2511.03548, §2.2-2.3.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flatjax.optim import FunctionMaximizer
        >>> loss_fn = lambda w: 0.5 * jnp.sum(jnp.array([3.0, 1.0]) * w**2)
        >>> top = FunctionMaximizer(lambda w, r: r * jnp.array([1.0, 0.0]))
        >>> gap = saer_gap(loss_fn, jnp.zeros(2), 0.5, top)
        >>> float(gap.value), gap.method  # (1/2) lambda_max r^2
        (0.375, 'exact')
    """
    call = "saer_gap"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_real(call, "radius", radius, lower=0.0, lower_open=True)
    maximizer = _resolve_maximizer(call, loss_fn, w, maximizer, key)
    result = saer(loss_fn, w, radius, maximizer)
    loss = loss_fn(w)
    value, perturbation = result.value, result.perturbation
    if result.method == "lower_bound":
        improved = value >= loss
        value = jnp.where(improved, value, loss)
        perturbation = jax.tree_util.tree_map(
            lambda leaf: jnp.where(improved, leaf, jnp.zeros_like(leaf)), perturbation
        )
    return SAERGap(value - loss, value, loss, perturbation, result.method)


class FlatnessRadius(NamedTuple):
    r"""The $\rho$-flatness radius found by bisection.

    ``method`` is a Python string, static metadata: map or compile a function
    returning this result with ``eqx.filter_vmap`` / ``eqx.filter_jit`` (plain
    ``jax.vmap`` and ``jax.jit`` accept only array outputs), or return its array
    fields.

    Attributes:
        value: the largest radius found flat (0 when none is): every tested radius
            up to it passed $\max_{\|v\|\le\rho}L(w+v) - L(w)\le$ ``tol``.
        upper: the smallest tested radius that failed (``inf`` when even
            ``max_radius`` passed); the crossing lies in ``[value, upper]``.
        bracketed: false when ``max_radius`` itself is flat, so the radius is at
            least ``max_radius`` and ``value`` is clipped to it.
        method: how each inner maximum was obtained (static string).
    """

    value: Float[Array, ""]
    upper: Float[Array, ""]
    bracketed: Bool[Array, ""]
    method: MaximizerMethod


def flatness_radius(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    maximizer: AbstractMaximizer | None = None,
    *,
    key: PRNGKeyArray | None = None,
    tol: Float[Array, ""] | float = 0.0,
    max_radius: Float[Array, ""] | float = 1.0,
    num_bisections: int = 40,
) -> FlatnessRadius:
    r"""Flatness radius: the largest $\rho$ with $L(w+v)=L(w)$ for $\|v\|\le\rho$.

    Definition 1 of arXiv 2511.03548, with equality up to ``tol``:
    bisection on $\rho\in[0,$ ``max_radius``$]$ of the predicate
    $\max_{\|v\|\le\rho} L(w+v) - L(w) \le \mathrm{tol}$, which is monotone in $\rho$
    because the balls are nested. Each step calls ``maximizer(w, rho)``; the result
    is 0 when no radius is flat.

    With an exact or closed-form maximizer the true radius lies in
    ``[value, upper]``. With a lower-bound maximizer (the default, projected gradient
    ascent) a radius may pass because the search missed the worst perturbation, so
    the radius found is an *upper bound* on the true radius, and the predicate seen
    by the bisection need not be monotone.

    The default ``tol = 0`` is Definition 1 exactly; the paper's constructions are
    exactly 0 in float arithmetic on their flat regions. A loss that is only nearly
    flat (a network) needs ``tol > 0``, and then the radius depends on it: a loss
    growing like $\frac12[\|v\|-\rho]_+^2$ passes up to $\rho + \sqrt{2\,\mathrm{tol}}$.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        maximizer: an ``AbstractMaximizer`` of ``loss_fn`` over the ball; None for
            projected gradient ascent (a lower bound) started from ``key``.
        key: PRNG key for the default maximizer.
        tol: the tolerance $\ge 0$ on the loss increase that still counts as flat.
        max_radius: the upper end of the search interval, $> 0$.
        num_bisections: number of bisection steps (static, $\ge 1$): the bracket
            has width ``max_radius / 2**num_bisections``.

    Returns:
        A ``FlatnessRadius``.

    Raises:
        ValueError: on a non-scalar loss, a negative ``tol``, a non-positive
            ``max_radius``, ``num_bisections < 1``, a maximizer whose output is not
            structured like ``w``, or neither ``maximizer`` nor ``key``.

    References:
        Schliserman, Vansover-Hager, Koren, arXiv 2511.03548, Definition 1.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flatjax.optim import FunctionMaximizer
        >>> loss_fn = lambda w: 0.5 * jnp.maximum(jnp.linalg.norm(w) - 0.3, 0.0) ** 2
        >>> outward = FunctionMaximizer(lambda w, r: r * jnp.array([1.0, 0.0]))
        >>> result = flatness_radius(loss_fn, jnp.zeros(2), outward)
        >>> round(float(result.value), 9), bool(result.bracketed)
        (0.3, True)
    """
    call = "flatness_radius"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_real(call, "tol", tol, lower=0.0)
    check_real(call, "max_radius", max_radius, lower=0.0, lower_open=True)
    num_bisections = check_int(call, "num_bisections", num_bisections, 1)
    maximizer = _resolve_maximizer(call, loss_fn, w, maximizer, key)
    x0, _, _ = flatten_loss(loss_fn, w)
    loss = loss_fn(w)

    def is_flat(radius):
        increase = loss_fn(_add(w, maximizer(w, radius))) - loss
        return increase <= tol

    top = jnp.asarray(max_radius, x0.dtype)
    value, upper, bracketed = bisect_largest(is_flat, top, num_bisections)
    return FlatnessRadius(value, upper, bracketed, maximizer.method)


class KeskarSharpness(NamedTuple):
    r"""Keskar et al.'s $\epsilon$-sharpness and the box maximum behind it.

    ``method`` is a Python string, static metadata: map or compile a function
    returning this result with ``eqx.filter_vmap`` / ``eqx.filter_jit`` (plain
    ``jax.vmap`` and ``jax.jit`` accept only array outputs), or return its array
    fields.

    Attributes:
        value: $\zeta = 100\,(\max_{v\in C_\epsilon}L(w+v) - L(w))/(1+L(w))$, a lower
            bound (the maximum is a lower bound).
        maximum: the best $L(w+v)$ found over the box.
        perturbation: the best $v$ found, structured like $w$.
        method: always ``"lower_bound"`` (projected ascent with restarts).
    """

    value: Float[Array, ""]
    maximum: Float[Array, ""]
    perturbation: PyTree
    method: MaximizerMethod


def keskar_sharpness(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    epsilon: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    num_restarts: int = 8,
    num_steps: int = 100,
    learning_rate: Float[Array, ""] | float = 0.1,
    subspace: int | Float[Array, "d p"] | None = None,
) -> KeskarSharpness:
    r"""Keskar et al.'s $\epsilon$-sharpness over the full-space box or a subspace.

    Metric 2.1 of Keskar et al. (2017) with $A = I$ (``subspace=None``):

    $$\zeta(w;\epsilon) = 100\cdot\frac{\max_{v\in C_\epsilon} L(w+v) - L(w)}
    {1 + L(w)},\qquad C_\epsilon = \{v : |v_i| \le \epsilon(|w_i| + 1)\}.$$

    The box maximum is found by projected sign-gradient ascent (steepest ascent for
    the box's $\ell_\infty$ geometry, each coordinate stepping a fraction of its own
    half-width $b_i = \epsilon(|w_i|+1)$, the fraction decaying linearly from
    ``learning_rate`` to 0), from ``num_restarts`` starts: $v = 0$ and uniform points
    of the box. Every iterate is feasible, so the best value seen is a lower bound
    on the maximum (``method = "lower_bound"``) and at least $L(w)$. For a convex
    loss the maximum sits at a vertex, which the ascent reaches once the steps add
    up to the box width: for a separable convex quadratic it is exact.

    With ``subspace`` a matrix $A\in\mathbb{R}^{d\times p}$ (or an int $p$: a
    Gaussian $A$ drawn from ``key``), Keskar et al.'s random-subspace variant:
    the maximum of $L(w + Ay)$ over the box
    $|y_i| \le \epsilon(|(A^+w)_i| + 1)$, $A^+$ the pseudo-inverse (for
    $d \gg p$ the subspace probes sharpness along $p$ random directions instead of
    the full space). $A = I$ gives the full-space value.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        epsilon: the relative box size $\epsilon > 0$ (Keskar et al. use
            $10^{-3}$ and $5\cdot10^{-4}$).
        key: PRNG key for the random starts.
        num_restarts: number of starts, $\ge 1$ (the first is $v = 0$).
        num_steps: ascent steps per start, $\ge 1$.
        learning_rate: initial step as a fraction of each half-width, $> 0$.
        subspace: None (full space), an int $p \ge 1$ (a random Gaussian
            $A\in\mathbb{R}^{d\times p}$ drawn from ``key``), or a $(d, p)$ matrix
            $A$ (static shape).

    Returns:
        A ``KeskarSharpness``; ``perturbation`` is $Ay$ in the subspace case.

    Raises:
        ValueError: on a non-scalar loss, $\epsilon \le 0$, ``learning_rate <= 0``,
            counts below 1, or a ``subspace`` matrix without $d$ rows.

    References:
        Keskar, Mudigere, Nocedal, Smelyanskiy, Tang (2017), "On Large-Batch
        Training for Deep Learning: Generalization Gap and Sharp Minima", ICLR,
        Metric 2.1. Madry et al. (2018), ICLR (projected sign ascent on a box).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)
        >>> result = keskar_sharpness(loss_fn, jnp.ones(2), 0.1, key=jax.random.key(0))
        >>> round(float(result.maximum), 12)  # both coordinates at 1 + 0.1 * 2
        1.44
    """
    call = "keskar_sharpness"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_real(call, "epsilon", epsilon, lower=0.0, lower_open=True)
    check_real(call, "learning_rate", learning_rate, lower=0.0, lower_open=True)
    check_key(call, key)
    num_restarts = check_int(call, "num_restarts", num_restarts, 1)
    num_steps = check_int(call, "num_steps", num_steps, 1)
    x0, unravel, flat_loss = flatten_loss(loss_fn, w)
    d = x0.shape[0]
    if subspace is None:
        projection = None
    elif isinstance(subspace, int) and not isinstance(subspace, bool):
        p = check_int(call, "subspace", subspace, 1)
        projection = jax.random.normal(jax.random.fold_in(key, 1), (d, p), x0.dtype)
    else:
        projection = jnp.asarray(subspace)
        if projection.ndim != 2 or projection.shape[0] != d:
            raise ValueError(
                f"`{call}(subspace=...)` must be an int or a (d, p) matrix with "
                f"d = {d}, got shape {projection.shape}"
            )
    if projection is None:
        perturbation, maximum = box_ascent(
            flat_loss,
            x0,
            epsilon * (jnp.abs(x0) + 1.0),
            key,
            num_restarts,
            num_steps,
            learning_rate,
        )
    else:
        # The box in the subspace is centred at the coordinates A^+ w of w.
        coordinates = jnp.linalg.pinv(projection) @ x0
        best_y, maximum = box_ascent(
            lambda y: flat_loss(x0 + projection @ y),
            jnp.zeros_like(coordinates),
            epsilon * (jnp.abs(coordinates) + 1.0),
            key,
            num_restarts,
            num_steps,
            learning_rate,
        )
        perturbation = projection @ best_y
    loss = flat_loss(x0)
    value = 100.0 * (maximum - loss) / (1.0 + loss)
    return KeskarSharpness(value, maximum, unravel(perturbation), "lower_bound")


def box_ascent(
    flat_loss: Callable[[Array], Array],
    x0: Float[Array, " d"],
    half_width: Float[Array, " d"],
    key: PRNGKeyArray,
    num_restarts: int,
    num_steps: int,
    learning_rate,
) -> tuple[Array, Array]:
    r"""$\max_{|v_i|\le b_i} L(x_0 + v)$ by projected sign-gradient ascent.

    Steps of a fraction of each half-width $b_i$, the fraction decaying linearly
    from ``learning_rate`` to 0, from $v = 0$ and ``num_restarts - 1`` uniform
    points of the box. Every iterate is feasible, so the best value seen (at least
    $L(x_0)$) is a lower bound on the maximum.

    Returns:
        ``(v, maximum)``: the best perturbation found and its loss.
    """
    d = x0.shape[0]
    value_and_grad = jax.value_and_grad(flat_loss)
    uniform = jax.random.uniform(
        key, (num_restarts - 1, d), x0.dtype, minval=-1.0, maxval=1.0
    )
    starts = jnp.concatenate([jnp.zeros((1, d), x0.dtype), uniform])
    starts = starts * half_width[None, :]

    def ascend(start):
        def step(t, carry):
            v, best_v, best = carry
            value, grad = value_and_grad(x0 + v)
            improved = value > best
            best_v = jnp.where(improved, v, best_v)
            best = jnp.where(improved, value, best)
            size = learning_rate * (1.0 - t / num_steps)
            v = jnp.clip(
                v + size * half_width * jnp.sign(grad), -half_width, half_width
            )
            return v, best_v, best

        initial = (start, start, jnp.array(-jnp.inf, x0.dtype))
        v, best_v, best = jax.lax.fori_loop(0, num_steps, step, initial)
        value = flat_loss(x0 + v)
        improved = value > best
        return jnp.where(improved, v, best_v), jnp.where(improved, value, best)

    perturbations, maxima = jax.vmap(ascend)(starts)
    best = jnp.argmax(maxima)
    return perturbations[best], maxima[best]
