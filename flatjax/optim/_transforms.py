"""GD, SAM, SA-GD and friends as optax gradient transformations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Int

from .._checks import check_real
from ._maximizer_base import AbstractMaximizer, tree_norm

Ascent = Literal["normalized", "unnormalized", "adaptive", "exact"]
_ASCENTS = ("normalized", "unnormalized", "adaptive", "exact")


class SharpnessAwareState(NamedTuple):
    """State of ``sharpness_aware``: a step counter only (no copy of the parameters).

    Attributes:
        count: number of updates so far (int32).
    """

    count: Int[Array, ""]


class ProjectionState(NamedTuple):
    """State of ``project_onto_ball``.

    Attributes:
        acted: whether the projection has changed any update so far.
    """

    acted: Bool[Array, ""]


def _check_hyperparameter(call: str, name: str, value) -> None:
    check_real(call, name, value, lower=0.0)


def _safe_scale(numerator, norm):
    """``numerator / norm``, and 0 where ``norm`` is 0 (no NaN, no gradient NaN)."""
    positive = norm > 0
    return jnp.where(positive, numerator / jnp.where(positive, norm, 1.0), 0.0)


def _perturbation(ascent, radius, grads, params, maximizer, adaptive_eta):
    tree_map = jax.tree_util.tree_map
    if ascent == "exact":
        v = maximizer(params, radius)
        norm = tree_norm(v)
        return eqx.error_if(
            v,
            norm > radius * (1 + 1e-9) + 1e-300,
            "sharpness_aware: the maximizer returned a perturbation outside the ball "
            "of the given radius",
        )
    if ascent == "unnormalized":
        return tree_map(lambda g: radius.astype(g.dtype) * g, grads)
    if ascent == "normalized":
        scale = _safe_scale(radius, tree_norm(grads))
        return tree_map(lambda g: scale.astype(g.dtype) * g, grads)
    # adaptive (ASAM): v = r T_w^2 g / ||T_w g||, T_w = |w| + eta.
    weights = tree_map(lambda w: jnp.abs(w) + adaptive_eta, params)
    weighted = tree_map(jnp.multiply, weights, grads)
    scale = _safe_scale(radius, tree_norm(weighted))
    return tree_map(lambda t, tg: scale.astype(tg.dtype) * t * tg, weights, weighted)


def sharpness_aware(
    radius,
    ascent: Ascent = "normalized",
    *,
    maximizer: AbstractMaximizer | Callable[[Any, Any], Any] | None = None,
    adaptive_eta: float = 0.01,
) -> optax.GradientTransformationExtraArgs:
    r"""Turn the gradient at $w$ into the gradient at $w + v$, $\|v\| \le r$.

    The composable core of every sharpness-aware method (paper digest §3): put it
    first in an ``optax.chain``, in front of any base optimizer. It receives the
    gradient $g = \nabla F_S(w)$ as ``updates`` and returns $\nabla F_S(w + v)$, with
    the ascent rule

    - ``"normalized"`` (SAM, Foret et al. 2021): $v = r\,g/\|g\|$, and $v = 0$ when
      $g = 0$: a zero gradient is a no-op, as in the proof of Theorem 6 (optax's
      ``contrib.sam`` returns NaN there);
    - ``"unnormalized"`` (USAM): $v = r\,g$;
    - ``"adaptive"`` (ASAM, Kwon et al. 2021): $v = r\,T_w^2 g / \|T_w g\|$ with
      $T_w = \mathrm{diag}(|w| + \eta_{\mathrm{a}})$;
    - ``"exact"`` (SA-GD): $v \in \arg\max_{\|v\|\le r} F_S(w+v)$ from a maximizer
      ``(w, radius) -> v``, given here or as the extra argument ``maximizer``; a
      perturbation outside the ball is a runtime error.

    With ``radius = 0`` the output is exactly the input gradient (a select, not an
    arithmetic identity), so the chain feeds the base optimizer the same numbers
    and is bit-for-bit the base optimizer run the same way; a different compiled
    program (e.g. a traced radius inside a jitted scan) may be fused and rounded
    differently by XLA (seen: 3e-17 after 300 Adam steps). The state is a step
    counter: no copy of the parameters. ``radius`` may be a traced array (e.g.
    under ``vmap``); concrete values are validated, traced ones are not.

    Extra arguments of ``update`` (keyword-only): ``grad_fn`` (required: maps
    parameters to $\nabla F_S$) and ``maximizer`` (for ``"exact"``); others are
    ignored.

    Args:
        radius: the perturbation radius $r \ge 0$.
        ascent: the ascent rule.
        maximizer: the exact maximizer for ``ascent="exact"``.
        adaptive_eta: $\eta_{\mathrm{a}} > 0$ of ASAM.

    Returns:
        An ``optax.GradientTransformationExtraArgs``.

    Raises:
        ValueError: for an unknown ``ascent``, a negative or non-finite concrete
            ``radius``, a missing ``grad_fn`` or ``params``, or a missing maximizer.

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> loss = lambda w: 0.5 * jnp.sum(w**2)
        >>> opt = optax.chain(sharpness_aware(0.1), optax.sgd(0.5))
        >>> w = jnp.array([3.0, 4.0])
        >>> updates, _ = opt.update(
        ...     jax.grad(loss)(w), opt.init(w), w, grad_fn=jax.grad(loss)
        ... )
        >>> w + updates  # gradient at w + 0.1 * (0.6, 0.8)
        Array([1.47, 1.96], dtype=float64)
    """
    call = "sharpness_aware"
    if ascent not in _ASCENTS:
        raise ValueError(
            f"`{call}(ascent=...)` must be one of {_ASCENTS}, got {ascent!r}"
        )
    _check_hyperparameter(call, "radius", radius)
    check_real(call, "adaptive_eta", adaptive_eta, lower=0.0, lower_open=True)
    if maximizer is not None and ascent != "exact":
        raise ValueError(
            f"`{call}(maximizer=...)` is only used with ascent='exact', got "
            f"ascent={ascent!r}"
        )

    def init(params):
        del params
        return SharpnessAwareState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, grad_fn=None, **extra_args):
        if params is None:
            raise ValueError(f"`{call}`: update needs `params` (the current iterate)")
        if grad_fn is None:
            raise ValueError(
                f"`{call}`: update needs the keyword extra argument `grad_fn` "
                "(parameters -> gradient of the training loss)"
            )
        chosen = maximizer if maximizer is not None else extra_args.get("maximizer")
        if ascent == "exact" and chosen is None:
            raise ValueError(
                f"`{call}(ascent='exact')` needs a maximizer: pass `maximizer=` to the "
                "factory or as an extra argument of update"
            )
        r = jnp.asarray(radius)
        v = _perturbation(ascent, r, updates, params, chosen, adaptive_eta)
        perturbed = jax.tree_util.tree_map(jnp.add, params, v)
        ascended = grad_fn(perturbed)
        # Radius 0 must be exactly the base optimizer, whatever grad_fn rounds to.
        new_updates = jax.tree_util.tree_map(
            lambda g, a: jnp.where(r == 0, g, a.astype(g.dtype)), updates, ascended
        )
        return new_updates, SharpnessAwareState(
            count=optax.safe_int32_increment(state.count)
        )

    return optax.GradientTransformationExtraArgs(init, update)


def _base_sgd(call: str, learning_rate) -> optax.GradientTransformation:
    if callable(learning_rate):
        return optax.sgd(learning_rate)
    _check_hyperparameter(call, "learning_rate", learning_rate)
    return optax.sgd(learning_rate)


def gd(learning_rate) -> optax.GradientTransformationExtraArgs:
    r"""Gradient descent $w_{t+1} = w_t - \eta\nabla F_S(w_t)$ (SAM/SA-GD with $r=0$).

    ``optax.sgd`` with extra-argument support, so one runner drives every method.

    Args:
        learning_rate: $\eta \ge 0$ (a float, traced array or optax schedule).

    Returns:
        An ``optax.GradientTransformationExtraArgs``.

    Examples:
        >>> import jax.numpy as jnp
        >>> opt = gd(0.1)
        >>> w = jnp.array([1.0])
        >>> opt.update(jnp.array([2.0]), opt.init(w), w)[0]
        Array([-0.2], dtype=float64)
    """
    return optax.with_extra_args_support(_base_sgd("gd", learning_rate))


def sam(
    learning_rate, radius, *, ascent: Ascent = "normalized"
) -> optax.GradientTransformationExtraArgs:
    r"""SAM: $w_{t+1} = w_t - \eta\nabla F_S(w_t + r g_t/\|g_t\|)$, $g_t$ the gradient.

    The paper's SAM (digest §3, item 3; Foret et al. 2021) with the zero-gradient
    rule: at $\nabla F_S(w_t) = 0$ it does not move. ``ascent`` selects the variant
    (``"normalized"``, ``"unnormalized"``, ``"adaptive"``). Needs the extra argument
    ``grad_fn``.

    Args:
        learning_rate: $\eta \ge 0$.
        radius: $r \ge 0$.
        ascent: the ascent rule (see ``sharpness_aware``).

    Returns:
        ``optax.chain(sharpness_aware(radius, ascent), optax.sgd(learning_rate))``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss = lambda w: 0.5 * jnp.sum(jnp.maximum(w, 0.0) ** 2)
        >>> opt, w = sam(0.5, 0.25), jnp.zeros(1)
        >>> u, _ = opt.update(jax.grad(loss)(w), opt.init(w), w, grad_fn=jax.grad(loss))
        >>> w + u  # zero gradient: SAM does not move (Theorem 6)
        Array([0.], dtype=float64)
    """
    if ascent == "exact":
        raise ValueError("`sam(ascent='exact')` is SA-GD: use `sa_gd` instead")
    return optax.chain(sharpness_aware(radius, ascent), _base_sgd("sam", learning_rate))


def sa_gd(
    learning_rate,
    radius,
    maximizer: AbstractMaximizer | Callable[[Any, Any], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SA-GD: $w_{t+1} = w_t - \eta\nabla F_S(w_t + v_t)$, $v_t$ an exact ascent.

    $v_t\in\arg\max_{\|v\|\le r}F_S(w_t+v)$.

    Gradient descent on the sharpness-aware empirical risk (digest §3, item 2). The
    maximizer is given here or as the extra argument ``maximizer`` of ``update``;
    which maximizer is used matters (Theorem 3 needs the paper's adversarial tie-break,
    ``SAGDTrap.adversarial_maximizer``).

    Args:
        learning_rate: $\eta \ge 0$.
        radius: $r \ge 0$.
        maximizer: an exact maximizer ``(w, radius) -> v``.

    Returns:
        ``optax.chain(sharpness_aware(radius, "exact"), optax.sgd(learning_rate))``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss = lambda w: 0.5 * jnp.sum(jnp.maximum(w, 0.0) ** 2)
        >>> opt, w = sa_gd(0.5, 0.25, lambda w, r: jnp.full_like(w, r)), jnp.zeros(1)
        >>> opt.update(jax.grad(loss)(w), opt.init(w), w, grad_fn=jax.grad(loss))[0]
        Array([-0.125], dtype=float64)
    """
    return optax.chain(
        sharpness_aware(radius, "exact", maximizer=maximizer),
        _base_sgd("sa_gd", learning_rate),
    )


def project_onto_ball(radius=1.0) -> optax.GradientTransformationExtraArgs:
    r"""Projection onto the domain $W = \{w : \|w\| \le R\}$, last in a chain.

    Replaces the update $u$ by $\Pi_W(w + u) - w$ when $w + u$ leaves the ball, and
    leaves it bit-for-bit unchanged otherwise; the state records whether it ever
    acted (the paper's lower-bound runs never project: digest §1). The interval
    $[-R, R]$ of Theorem 6 is the ball of $\mathbb{R}^1$.

    Args:
        radius: $R > 0$.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with ``ProjectionState``.

    Examples:
        >>> import jax.numpy as jnp
        >>> proj = project_onto_ball(1.0)
        >>> w = jnp.array([0.0, 0.0])
        >>> u, state = proj.update(jnp.array([3.0, 4.0]), proj.init(w), w)
        >>> u, bool(state.acted)
        (Array([0.6, 0.8], dtype=float64), True)
    """
    check_real("project_onto_ball", "radius", radius, lower=0.0, lower_open=True)

    def init(params):
        del params
        return ProjectionState(acted=jnp.asarray(False))

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("`project_onto_ball`: update needs `params`")
        target = jax.tree_util.tree_map(jnp.add, params, updates)
        projected, acted = project_point(target, radius)
        # Inside the ball the update passes through untouched (bit-for-bit).
        new_updates = jax.tree_util.tree_map(
            lambda t, p, u: jnp.where(acted, (t - p).astype(u.dtype), u),
            projected,
            params,
            updates,
        )
        return new_updates, ProjectionState(acted=jnp.logical_or(state.acted, acted))

    return optax.GradientTransformationExtraArgs(init, update)


def project_point(w, radius) -> tuple[Any, Bool[Array, ""]]:
    """Project a parameter pytree onto the ball of ``radius``; also say if it moved."""
    norm = tree_norm(w)
    acted = norm > radius
    scale = _safe_scale(jnp.asarray(radius), norm)
    projected = jax.tree_util.tree_map(
        lambda x: jnp.where(acted, (scale * x).astype(x.dtype), x), w
    )
    return projected, acted
