"""GD, SAM, SA-GD and friends as optax gradient transformations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Int

from .._checks import (
    check_float_tree,
    check_gradient_output,
    check_real,
    is_concrete,
)
from ._maximizer_base import AbstractMaximizer, tree_norm

Ascent = Literal["normalized", "unnormalized", "adaptive", "exact"]
_ASCENTS = ("normalized", "unnormalized", "adaptive", "exact")


#: A radius: a float, a (possibly traced) scalar array, or an optax schedule
#: ``count -> radius`` evaluated at the transform's step counter.
Radius = float | Array | Callable[[Array], Array]
#: Which parameters to perturb: a pytree of bools with the structure of the
#: parameters (or a prefix of it), or a function of the parameters returning one,
#: as ``optax.masked`` takes.
Mask = Any

_NOT_RAW_GRADIENT = (
    ": the gradient passed to update (`updates`) is not `grad_fn(params)`: they differ "
    "by more than sqrt(eps) of their norm. Sharpness-aware minimization needs the "
    "raw gradient: something before it changed the gradient (a clip, weight decay or "
    "optimizer placed before it in optax.chain, or optax.MultiSteps wrapped around "
    "it), or `grad_fn` computes another loss, batch or dropout mask than the gradient "
    "passed. Put clipping, weight decay and the base optimizer after "
    "`sharpness_aware` in the chain or inside `sharpness_aware_wrapper(inner, ...)`, "
    "put optax.MultiSteps inside too, or pass `check_gradient=False` if `grad_fn` "
    "differs on purpose."
)


class SharpnessAwareState(NamedTuple):
    """State of ``sharpness_aware``: a step counter only (no copy of the parameters).

    Attributes:
        count: number of updates so far (int32); a radius schedule is evaluated at it.
    """

    count: Int[Array, ""]


class SharpnessAwareWrapperState(NamedTuple):
    """State of ``sharpness_aware_wrapper``: a step counter and the inner state.

    Attributes:
        count: number of updates so far (int32); a radius schedule is evaluated at it.
        inner_state: the state of the wrapped transformation.
    """

    count: Int[Array, ""]
    inner_state: optax.OptState


class ProjectionState(NamedTuple):
    """State of ``project_onto_ball``.

    Attributes:
        acted: whether the projection has changed any update so far.
    """

    acted: Bool[Array, ""]


def _check_hyperparameter(call: str, name: str, value):
    return check_real(call, name, value, lower=0.0)


def _check_radius(call: str, radius):
    """Validate a constant radius now; a schedule is validated at each value."""
    if callable(radius):
        return radius
    return _check_hyperparameter(call, "radius", radius)


def _radius_at(call: str, radius, count) -> Array:
    if callable(radius):
        radius = _check_hyperparameter(call, "radius", radius(count))
    return jnp.asarray(radius)


def _safe_scale(numerator, norm):
    """``numerator / norm``, and 0 where ``norm`` is 0 (no NaN, no gradient NaN)."""
    positive = norm > 0
    return jnp.where(positive, numerator / jnp.where(positive, norm, 1.0), 0.0)


def _mask_flags(call: str, mask: Mask, params) -> list[bool]:
    """One static bool per parameter leaf: perturb it or not."""
    n = len(jax.tree_util.tree_leaves(params))
    if mask is None:
        return [True] * n
    tree = mask(params) if callable(mask) else mask
    try:
        full = jax.tree_util.tree_map(
            lambda flag, sub: jax.tree_util.tree_map(lambda _: flag, sub),
            tree,
            params,
        )
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`{call}(mask=...)` must be a pytree of bools with the structure of "
            f"`params` or a prefix of it (or a function of `params` returning one), "
            f"got {jax.tree_util.tree_structure(tree)} for params "
            f"{jax.tree_util.tree_structure(params)}"
        ) from err
    flags = jax.tree_util.tree_leaves(full)
    for flag in flags:
        if not isinstance(flag, bool | jnp.bool_ | jax.Array) or (
            isinstance(flag, jax.Array)
            and (flag.shape != () or flag.dtype != jnp.bool_ or not is_concrete(flag))
        ):
            raise TypeError(
                f"`{call}(mask=...)` leaves must be Python bools (known when the "
                f"step is traced), got {flag!r:.60}"
            )
    if len(flags) != n:
        raise ValueError(
            f"`{call}(mask=...)` must give one bool per parameter leaf ({n}), got "
            f"{len(flags)}"
        )
    return [bool(flag) for flag in flags]


def _perturbation(
    ascent, radius, grads, params, treedef, maximizer, adaptive_eta, flags
):
    """The ascent step $v$ as a list of leaves (``None`` where not perturbed)."""
    if ascent == "exact":
        v = maximizer(jax.tree_util.tree_unflatten(treedef, params), radius)
        norm = tree_norm(v)
        v = eqx.error_if(
            v,
            norm > radius * (1 + 1e-9) + 1e-300,
            "sharpness_aware: the maximizer returned a perturbation outside the ball "
            "of the given radius",
        )
        return jax.tree_util.tree_leaves(v)
    chosen = [g for g, flag in zip(grads, flags, strict=True) if flag]
    if ascent == "unnormalized":
        scaled = [radius.astype(g.dtype) * g for g in chosen]
    elif ascent == "normalized":
        scale = _safe_scale(radius, tree_norm(chosen))
        scaled = [scale.astype(g.dtype) * g for g in chosen]
    else:
        # adaptive (ASAM): v = r T_w^2 g / ||T_w g||, T_w = |w| + eta.
        weights = [
            jnp.abs(w) + adaptive_eta
            for w, flag in zip(params, flags, strict=True)
            if flag
        ]
        weighted = [t * g for t, g in zip(weights, chosen, strict=True)]
        scale = _safe_scale(radius, tree_norm(weighted))
        scaled = [
            scale.astype(tg.dtype) * t * tg
            for t, tg in zip(weights, weighted, strict=True)
        ]
    chosen_v = iter(scaled)
    return [next(chosen_v) if flag else None for flag in flags]


def _check_raw_gradient(call, out, updates, raw):
    """Attach a runtime error to ``out`` unless ``updates`` is ``raw`` to rounding.

    The comparison is relative to the larger norm, with tolerance sqrt(eps) of the
    least precise dtype: two evaluations of one gradient (fused differently by XLA)
    differ by a few eps; a clip that acts, weight decay, Adam's scaling or another
    micro-batch's mean differ by far more. NaN compares as no difference (a
    non-finite gradient is ``optax.apply_if_finite``'s business).
    """
    difference = [u - g.astype(u.dtype) for u, g in zip(updates, raw, strict=True)]
    scale = jnp.maximum(tree_norm(updates), tree_norm(raw))
    eps = max(float(jnp.finfo(u.dtype).eps) for u in updates)
    bad = tree_norm(difference) > eps**0.5 * scale
    # The error rides on a scalar 1 that multiplies the output (x * 1 is x for
    # every float, -0 and NaN included): raising it on the whole output tree
    # made XLA pass every leaf through the error's conditional, which cost about
    # 15% of a step of a 100k-parameter MLP on CPU; this costs about half that.
    message = f"`{call}`" + _NOT_RAW_GRADIENT
    one = eqx.error_if(jnp.ones((), out[0].dtype), bad, message)
    return [leaf * one.astype(leaf.dtype) for leaf in out]


def _refuse_masked_nodes(call: str, params) -> None:
    """Refuse the partial tree ``optax.masked`` passes: ``grad_fn`` cannot take it."""
    nodes = jax.tree_util.tree_leaves(
        params, is_leaf=lambda x: isinstance(x, optax.MaskedNode)
    )
    if any(isinstance(node, optax.MaskedNode) for node in nodes):
        raise TypeError(
            f"`{call}` is inside `optax.masked` (or `optax.multi_transform`), which "
            "passes it a partial parameter tree that `grad_fn` cannot evaluate: use "
            f"`{call}(..., mask=...)` to perturb a subset of the parameters instead"
        )


class _Config(NamedTuple):
    call: str
    radius: Any
    ascent: str
    mask: Mask
    maximizer: Any
    adaptive_eta: Any
    axis_name: Any
    per_device_perturbation: bool
    check_gradient: bool


def _check_config(call, radius, ascent, mask, maximizer, adaptive_eta, **rest):
    if ascent not in _ASCENTS:
        raise ValueError(
            f"`{call}(ascent=...)` must be one of {_ASCENTS}, got {ascent!r}"
        )
    if maximizer is not None and ascent != "exact":
        raise ValueError(
            f"`{call}(maximizer=...)` is only used with ascent='exact', got "
            f"ascent={ascent!r}"
        )
    if mask is not None and ascent == "exact":
        raise ValueError(
            f"`{call}(mask=...)` cannot be used with ascent='exact' (the exact "
            "maximizer works on the whole ball); use another ascent or give the "
            "maximizer a restricted ball"
        )
    if rest["per_device_perturbation"] and rest["axis_name"] is None:
        raise ValueError(
            f"`{call}(per_device_perturbation=True)` needs `axis_name=` (the batch "
            "axis of the shard_map or vmap the step runs under)"
        )
    return _Config(
        call=call,
        radius=_check_radius(call, radius),
        ascent=ascent,
        mask=mask,
        maximizer=maximizer,
        adaptive_eta=check_real(
            call, "adaptive_eta", adaptive_eta, lower=0.0, lower_open=True
        ),
        **rest,
    )


def _sharpness_aware_gradient(
    config: _Config, updates, count, params, grad_fn, extra_args
):
    r"""$\nabla F_S(w + v)$ from the raw gradient ``updates`` at $w$ = ``params``."""
    call = f"{config.call}.update"
    if params is None:
        raise ValueError(f"`{call}` needs `params` (the current iterate)")
    if grad_fn is None:
        raise ValueError(
            f"`{call}` needs the keyword extra argument `grad_fn` (parameters -> "
            "gradient of the training loss)"
        )
    chosen = (
        config.maximizer
        if config.maximizer is not None
        else extra_args.get("maximizer")
    )
    if config.ascent == "exact" and chosen is None:
        raise ValueError(
            f"`{config.call}(ascent='exact')` needs a maximizer: pass `maximizer=` to "
            "the factory or as an extra argument of update"
        )
    _refuse_masked_nodes(config.call, params)
    check_float_tree(call, "params", params)
    check_gradient_output(call, "updates", updates, params)
    flags = _mask_flags(config.call, config.mask, params)
    r = _radius_at(config.call, config.radius, count)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    local = jax.tree_util.tree_leaves(updates)
    axis = config.axis_name
    averaged = local if axis is None else jax.lax.pmean(local, axis)
    ascent_grads = local if config.per_device_perturbation else averaged
    v = _perturbation(
        config.ascent,
        r,
        ascent_grads,
        leaves,
        treedef,
        chosen,
        config.adaptive_eta,
        flags,
    )
    perturbed = [w if d is None else w + d for w, d in zip(leaves, v, strict=True)]
    ascended_tree = grad_fn(jax.tree_util.tree_unflatten(treedef, perturbed))
    check_gradient_output(call, "grad_fn", ascended_tree, params)
    ascended = jax.tree_util.tree_leaves(ascended_tree)
    if axis is not None:
        ascended = jax.lax.pmean(ascended, axis)
    # Radius 0 must be exactly the base optimizer, whatever grad_fn rounds to.
    out = [
        jnp.where(r == 0, g, a.astype(g.dtype)) if flag else g
        for g, a, flag in zip(averaged, ascended, flags, strict=True)
    ]
    if config.check_gradient:
        raw = grad_fn(params)
        check_gradient_output(call, "grad_fn", raw, params)
        out = _check_raw_gradient(call, out, local, jax.tree_util.tree_leaves(raw))
    return jax.tree_util.tree_unflatten(treedef, out)


def sharpness_aware(
    radius: Radius,
    ascent: Ascent = "normalized",
    *,
    mask: Mask = None,
    maximizer: AbstractMaximizer | Callable[[Any, Any], Any] | None = None,
    adaptive_eta: float = 0.01,
    axis_name: str | None = None,
    per_device_perturbation: bool = False,
    check_gradient: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Turn the gradient at $w$ into the gradient at $w + v$, $\|v\| \le r$.

    The chain-head form of every sharpness-aware method (the SAM and SA-GD update
    rules of arXiv 2511.03548, studied in Theorems 2-7): put it *first* in an
    ``optax.chain``, in front of any base optimizer; ``sam``, ``sa_gd`` and the
    runners use it. It receives the gradient $g = \nabla F_S(w)$ as ``updates``
    and returns $\nabla F_S(w + v)$; whatever follows it in the chain acts on that.
    ``optax.chain(sharpness_aware(r), *rest)`` computes exactly what
    ``sharpness_aware_wrapper(optax.chain(*rest), r)`` does; use the wrapper when
    you hold a finished optimizer object. The state is a step counter: no copy of
    the parameters.

    The ascent rule ``ascent``, for the raw gradient $g = \nabla F_S(w)$:

    - ``"normalized"`` (SAM, Foret et al. 2021): $v = r\,g/\|g\|$, and $v = 0$ when
      $g = 0$: a zero gradient is a no-op, as in the proof of Theorem 6 (optax's
      ``contrib.sam`` returns NaN there);
    - ``"unnormalized"`` (USAM): $v = r\,g$;
    - ``"adaptive"`` (ASAM, Kwon et al. 2021): $v = r\,T_w^2 g / \|T_w g\|$ with
      $T_w = \mathrm{diag}(|w| + \eta_{\mathrm{a}})$;
    - ``"exact"`` (SA-GD): $v \in \arg\max_{\|v\|\le r} F_S(w+v)$ from a maximizer
      ``(w, radius) -> v``, given here or as the extra argument ``maximizer``; a
      perturbation outside the ball is a runtime error.

    With $r = 0$ the output is exactly the input gradient (a select, not an
    arithmetic identity), so the base optimizer sees the same numbers and is
    bit-for-bit the base optimizer run the same way; a different compiled program
    (e.g. a traced radius inside a jitted scan) may be fused and rounded differently
    by XLA (seen: 3e-17 after 300 Adam steps). ``radius`` may be a traced array
    (e.g. under ``vmap``) or an optax schedule of the step count (also under
    ``optax.inject_hyperparams``); concrete values are validated.

    **The raw gradient.** ``updates`` must be $\nabla F_S(w)$ as ``grad_fn(params)``
    computes it. With ``check_gradient=True`` (the default) each update compares
    the two and raises at run time when they differ by more than $\sqrt{\epsilon}$
    of their norm: a clip that acts, weight decay or an optimizer placed *before*
    the transform, or ``optax.MultiSteps`` wrapped *around* it (whose mean over
    micro-batches is not the last micro-batch's ``grad_fn``), would otherwise be
    silently discarded. The comparison costs one evaluation of ``grad_fn`` at $w$,
    which XLA merges with the caller's own gradient when both are in one jitted
    step (so a jitted SAM step makes two gradient evaluations, not three); pass
    ``check_gradient=False`` when ``grad_fn`` differs on purpose (e.g. another
    dropout mask).

    **Masks.** ``mask`` (a pytree of bools, or a function of the parameters
    returning one, as ``optax.masked`` takes) selects the leaves to perturb; the
    norm of ``"normalized"``/``"adaptive"`` is taken over them only, and the other
    leaves get their plain gradient $\nabla F_S(w)$.

    **Several devices.** With ``axis_name`` (the batch axis of a ``shard_map`` or
    ``vmap``), ``updates`` and ``grad_fn`` are the *local* shard's; the perturbed
    gradients are averaged over the axis before the base optimizer, so every device
    applies the same update. ``per_device_perturbation=False`` averages the raw
    gradients first (one global perturbation: SAM on the whole batch);
    ``True`` lets each shard ascend along its own gradient (m-sharpness with $m$
    the shard's batch, as ``optax.contrib.sam`` does when the incoming gradient is
    not averaged). Under ``jax.shard_map``, JAX sums the gradient of replicated
    parameters over the axis itself unless ``check_vma=False``: pass
    ``check_vma=False`` (or parameters that vary over the axis) so that
    ``updates`` and ``grad_fn`` are local, as a per-device perturbation needs.

    **Pipelines.** Clipping, weight decay and the base optimizer act on the
    perturbed gradient, as in the SAM recipes: after ``sharpness_aware`` in a
    chain, or inside ``sharpness_aware_wrapper``; the two are the same computation.
    ``optax.apply_if_finite`` goes after/inside too, so that it sees (and skips) a
    non-finite perturbed gradient; around the whole it sees only the raw gradient.
    Gradient accumulation with one perturbation per micro-batch (averaged):
    ``optax.MultiSteps`` after/inside; with one global perturbation: a ``grad_fn``
    that accumulates over the micro-batches itself.

    Extra arguments of ``update`` (keyword-only): ``grad_fn`` (required: maps
    parameters to $\nabla F_S$) and ``maximizer`` (for ``"exact"``); others are
    ignored (the wrapper passes all of them to ``inner``).

    Args:
        radius: the perturbation radius $r \ge 0$: a float, a traced scalar or
            an optax schedule ``count -> r``.
        ascent: the ascent rule.
        mask: the parameters to perturb (default: all).
        maximizer: the exact maximizer for ``ascent="exact"``.
        adaptive_eta: $\eta_{\mathrm{a}} > 0$ of ASAM.
        axis_name: the batch axis name under ``shard_map``/``vmap``, or ``None``.
        per_device_perturbation: with ``axis_name``, perturb each shard along its
            own gradient instead of the averaged one.
        check_gradient: check that ``updates`` is ``grad_fn(params)``.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with ``SharpnessAwareState``.

    Raises:
        ValueError: for an unknown ``ascent``, a negative or non-finite concrete
            ``radius``, a missing ``grad_fn`` or ``params``, a missing maximizer, a
            mask with ``ascent="exact"``, ``per_device_perturbation`` without
            ``axis_name``, or a ``grad_fn`` output or ``updates``
            not shaped like ``params``.
        TypeError: for parameters or gradients that are not floating arrays (an
            integer leaf, a whole ``equinox`` module: use ``eqx.partition``), a
            ``grad_fn`` that returns ``(value, gradient)``, or a mask leaf that is
            not a bool.

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

        A clip placed before it would be discarded; it is refused instead:

        >>> clipped_first = optax.chain(
        ...     optax.clip_by_global_norm(1.0), sharpness_aware(0.1), optax.sgd(0.5)
        ... )
        >>> try:
        ...     clipped_first.update(
        ...         jax.grad(loss)(w), clipped_first.init(w), w, grad_fn=jax.grad(loss)
        ...     )
        ... except Exception as error:
        ...     print("refused:", "is not `grad_fn(params)`" in str(error))
        refused: True
    """
    call = "sharpness_aware"
    config = _check_config(
        call,
        radius,
        ascent,
        mask,
        maximizer,
        adaptive_eta,
        axis_name=axis_name,
        per_device_perturbation=per_device_perturbation,
        check_gradient=check_gradient,
    )

    def init(params):
        check_float_tree(call, "params", params)
        return SharpnessAwareState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, grad_fn=None, **extra_args):
        new_updates = _sharpness_aware_gradient(
            config, updates, state.count, params, grad_fn, extra_args
        )
        return new_updates, SharpnessAwareState(
            count=jnp.asarray(optax.safe_int32_increment(state.count))
        )

    return optax.GradientTransformationExtraArgs(init, update)


def sharpness_aware_wrapper(
    inner: optax.GradientTransformation,
    radius: Radius,
    ascent: Ascent = "normalized",
    *,
    mask: Mask = None,
    maximizer: AbstractMaximizer | Callable[[Any, Any], Any] | None = None,
    adaptive_eta: float = 0.01,
    axis_name: str | None = None,
    per_device_perturbation: bool = False,
    check_gradient: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Feed the gradient at $w + v$, $\|v\| \le r$, to any optax transformation.

    The wrapper form of sharpness-aware minimization: it takes the raw gradient
    $g = \nabla F_S(w)$, computes the perturbed gradient $\nabla F_S(w + v)$ and
    passes it to ``inner`` (a whole pipeline: clipping, weight decay, schedules,
    the base optimizer, ``optax.MultiSteps``, ``optax.apply_if_finite``), which
    returns the update. This is the SAM recipe of Foret et al. (2021) and of the
    PyTorch SAM wrapper, where the base optimizer's step uses the second gradient;
    it computes exactly what ``optax.chain(sharpness_aware(...), inner)`` does,
    with ``inner``'s state kept beside the step counter.

    Everything ``sharpness_aware`` documents holds here: the ascent rules, the
    exact radius-0 and zero-gradient guarantees, radius schedules, masks, the
    check that ``updates`` is the raw gradient, and ``axis_name`` for several
    devices. Where the pieces of a pipeline go:

    - ``optax.clip_by_global_norm``, ``optax.add_decayed_weights``, ``adamw``:
      inside ``inner``, so they act on the perturbed gradient. Before the wrapper
      they are refused at run time when they change the gradient (the check).
    - ``optax.apply_if_finite``: inside ``inner``; it then skips a step whose
      *perturbed* gradient is not finite (a raw gradient that is not finite makes
      the perturbed one not finite too). Around the wrapper it sees only the raw
      gradient.
    - ``optax.MultiSteps``: inside ``inner``: each micro-batch gets its own
      perturbation and the perturbed gradients are averaged (m-sharpness); the
      radius schedule then counts micro-batches. Around the wrapper it is refused
      (it would use the last micro-batch's perturbed gradient, not the mean).

    Args:
        inner: the optax transformation (or chain) that receives the perturbed
            gradient; it also receives every extra argument.
        radius: $r \ge 0$; this and every argument below as in
            ``sharpness_aware``.
        ascent: the ascent rule.
        mask: the parameters to perturb.
        maximizer: the exact maximizer of ``"exact"``.
        adaptive_eta: ASAM's $\eta_{\mathrm{a}}$.
        axis_name: the batch axis.
        per_device_perturbation: one perturbation per shard.
        check_gradient: the raw-gradient check.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with
        ``SharpnessAwareWrapperState``.

    Raises:
        ValueError: in the cases ``sharpness_aware`` lists, the message naming
            ``sharpness_aware_wrapper``.
        TypeError: likewise.

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> loss = lambda w: 0.5 * jnp.sum(w**2)
        >>> inner = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.5))
        >>> opt = sharpness_aware_wrapper(inner, 0.1)
        >>> w = jnp.array([3.0, 4.0])
        >>> updates, _ = opt.update(
        ...     jax.grad(loss)(w), opt.init(w), w, grad_fn=jax.grad(loss)
        ... )
        >>> updates  # -0.5 * the clipped gradient at w + 0.1 * (0.6, 0.8)
        Array([-0.3, -0.4], dtype=float64)
    """
    call = "sharpness_aware_wrapper"
    config = _check_config(
        call,
        radius,
        ascent,
        mask,
        maximizer,
        adaptive_eta,
        axis_name=axis_name,
        per_device_perturbation=per_device_perturbation,
        check_gradient=check_gradient,
    )
    if isinstance(inner, optax.MultiSteps):
        # Not a GradientTransformation itself; its update takes extra arguments.
        inner = optax.GradientTransformationExtraArgs(inner.init, inner.update)
    if not isinstance(
        inner, optax.GradientTransformation | optax.GradientTransformationExtraArgs
    ):
        raise TypeError(
            f"`{call}(inner=...)` must be an optax GradientTransformation (e.g. "
            f"`optax.adam(1e-3)`), got {inner!r:.60}"
        )
    inner = optax.with_extra_args_support(inner)

    def init(params):
        check_float_tree(call, "params", params)
        return SharpnessAwareWrapperState(
            count=jnp.zeros([], jnp.int32), inner_state=inner.init(params)
        )

    def update(updates, state, params=None, *, grad_fn=None, **extra_args):
        perturbed = _sharpness_aware_gradient(
            config, updates, state.count, params, grad_fn, extra_args
        )
        new_updates, inner_state = inner.update(
            perturbed, state.inner_state, params, grad_fn=grad_fn, **extra_args
        )
        return new_updates, SharpnessAwareWrapperState(
            count=jnp.asarray(optax.safe_int32_increment(state.count)),
            inner_state=inner_state,
        )

    return optax.GradientTransformationExtraArgs(init, update)


def _base_sgd(
    call: str, learning_rate: optax.ScalarOrSchedule
) -> optax.GradientTransformation:
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
    learning_rate,
    radius,
    *,
    ascent: Ascent = "normalized",
    check_gradient: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""SAM: $w_{t+1} = w_t - \eta\nabla F_S(w_t + r g_t/\|g_t\|)$, $g_t$ the gradient.

    The paper's SAM (arXiv 2511.03548, Section 5; Foret et al. 2021) with the
    zero-gradient rule: at $\nabla F_S(w_t) = 0$ it does not move. ``ascent`` selects
    the variant (``"normalized"``, ``"unnormalized"``, ``"adaptive"``). Needs the extra
    argument ``grad_fn``.

    Args:
        learning_rate: $\eta \ge 0$.
        radius: $r \ge 0$.
        ascent: the ascent rule (see ``sharpness_aware``).
        check_gradient: check that ``updates`` is ``grad_fn(params)`` (see
            ``sharpness_aware``); a runner that passes the raw gradient by
            construction may turn it off.

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
    return optax.chain(
        sharpness_aware(radius, ascent, check_gradient=check_gradient),
        _base_sgd("sam", learning_rate),
    )


def sa_gd(
    learning_rate,
    radius,
    maximizer: AbstractMaximizer | Callable[[Any, Any], Any] | None = None,
    *,
    check_gradient: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""SA-GD: $w_{t+1} = w_t - \eta\nabla F_S(w_t + v_t)$, $v_t$ an exact ascent.

    $v_t\in\arg\max_{\|v\|\le r}F_S(w_t+v)$.

    Gradient descent on the sharpness-aware empirical risk (arXiv 2511.03548, Section
    4). The maximizer is given here or as the extra argument ``maximizer`` of
    ``update``; which maximizer is used matters (Theorem 3 needs the paper's adversarial
    tie-break, ``SAGDTrap.adversarial_maximizer``).

    Args:
        learning_rate: $\eta \ge 0$.
        radius: $r \ge 0$.
        maximizer: an exact maximizer ``(w, radius) -> v``.
        check_gradient: check that ``updates`` is ``grad_fn(params)`` (see
            ``sharpness_aware``).

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
        sharpness_aware(
            radius, "exact", maximizer=maximizer, check_gradient=check_gradient
        ),
        _base_sgd("sa_gd", learning_rate),
    )


def project_onto_ball(radius=1.0) -> optax.GradientTransformationExtraArgs:
    r"""Projection onto the domain $W = \{w : \|w\| \le R\}$, last in a chain.

    Replaces the update $u$ by $\Pi_W(w + u) - w$ when $w + u$ leaves the ball, and
    leaves it bit-for-bit unchanged otherwise; the state records whether it ever
    acted (the paper's lower-bound proofs check that no projection takes place). The
    interval $[-R, R]$ of Theorem 6 is the ball of $\mathbb{R}^1$.

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
