"""Run an optax transform on a problem with ``lax.scan``: metrics, averages, flags."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import (
    check_in_support,
    check_int,
    check_prng_key,
    check_real,
    check_training_set,
    check_vector,
)
from ..optim import tree_norm
from ..problems import AbstractProblem

#: The metrics whose non-finite value flags a run (``nonfinite_step``); a user's
#: ``extra_metrics`` may be infinite on purpose and are not read.
_FLAGGED_METRICS = ("empirical_risk", "grad_norm", "iterate_norm", "saer")


class RunResult(NamedTuple):
    r"""What ``run`` returns; every array gains a leading axis under ``vmap``.

    The convention of the paper's bounds (the iterates $w_1, \dots, w_T$): a run of
    ``steps`` $= T$ yields the iterates $w_1$ (the initial point), $w_2, \dots, w_T$,
    i.e. $T-1$ updates; averages are over these $T$ iterates.

    Attributes:
        metrics: per-iterate metrics, each of shape ``(T,)``: ``empirical_risk``
            $F_S(w_t)$, ``grad_norm`` $\|\nabla F_S(w_t)\|$, ``iterate_norm``,
            ``population_risk`` and ``population_exact`` (when recorded), ``saer``
            $F_S^r(w_t)$ (when a maximizer is given), and any ``extra_metrics``.
        final: the last iterate $w_T$.
        suffix_starts: the 1-based starts $\tau_1 < \dots < \tau_k$ (``suffix_starts[0]
            == 1``, so ``suffix_averages[0]`` is the uniform average $\widehat w$).
        suffix_averages: $\widehat w_\tau = \frac{1}{T-\tau+1}\sum_{t\ge\tau} w_t$ for
            each start, shape ``(k, d)``.
        suffix_metrics: the same metrics as ``metrics`` (but ``grad_norm``) at each
            suffix average, each of shape ``(k,)``.
        projection_acted: whether the projection onto the domain ever changed an
            iterate (the paper's lower-bound runs never project).
        nonfinite_step: the first 1-based $t$ at which the run diverged, or -1 (a
            per-run flag: a bad run does not stop a sweep). Iterate $t$ counts as
            diverged when $w_t$, $\|w_t\|$, $F_S(w_t)$, $\|\nabla F_S(w_t)\|$
            or (when recorded) $F_S^r(w_t)$ is NaN or infinite. A norm that
            overflows a finite iterate counts, and the projection never hides an
            overflow: an update whose norm is not finite is projected to NaN, not
            scaled to 0, so its iterate is flagged and every later value is NaN.
    """

    metrics: dict[str, Array]
    final: Float[Array, " d"]
    suffix_starts: Int[Array, " k"]
    suffix_averages: Float[Array, "k d"]
    suffix_metrics: dict[str, Array]
    projection_acted: Bool[Array, ""]
    nonfinite_step: Int[Array, ""]

    @property
    def average(self) -> Float[Array, " d"]:
        r"""The uniform average $\widehat w = \frac1T\sum_{t=1}^T w_t$."""
        return self.suffix_averages[..., 0, :]


def default_suffix_starts(steps: int) -> tuple[int, ...]:
    r"""Default suffix starts: $\tau \in \{1, T/4, T/2, 3T/4, T\}$, rounded up."""
    quarters = (1, math.ceil(steps / 4), math.ceil(steps / 2), math.ceil(3 * steps / 4))
    return tuple(sorted({*quarters, steps}))


def _check_suffix_starts(call: str, starts, steps: int) -> tuple[int, ...]:
    if isinstance(starts, str) or not isinstance(starts, Sequence):
        raise TypeError(
            f"`{call}(suffix_starts=...)` must be a sequence of ints, got {starts!r}"
        )
    starts = tuple(int(check_int(call, "suffix_starts", s, 1)) for s in starts)
    if any(s > steps for s in starts):
        raise ValueError(
            f"`{call}(suffix_starts=...)` must lie in [1, steps={steps}], got {starts}"
        )
    return tuple(sorted({1, *starts}))


def run(
    problem: AbstractProblem,
    optimizer: optax.GradientTransformation,
    S: Array,
    steps: int,
    *,
    w1: Array | None = None,
    maximizer=None,
    saer_radius=None,
    suffix_starts: Sequence[int] | None = None,
    record_population: bool = True,
    population_every_step: bool = True,
    key: PRNGKeyArray | None = None,
    population_samples: int = 4096,
    extra_metrics: dict[str, Callable[[Array], Array]] | None = None,
    project: bool = True,
) -> RunResult:
    r"""Run ``optimizer`` on the empirical risk $F_S$ of ``problem`` with ``lax.scan``.

    From $w_1$ (default ``problem.initial_point()``), each update calls
    ``optimizer.update(grad, state, w, grad_fn=..., loss_fn=..., maximizer=...)``
    with $\nabla F_S(w_t)$, so the optax transforms of ``flatjax.optim`` (and any
    optax chain) drive GD, SAM and SA-GD alike; the iterate is then projected onto
    the domain ball of radius ``problem.domain_radius`` (``project=True``), and the
    result records whether that ever acted.

    Suffix averages: the sums $\sum_{t\ge\tau_j} w_t$ for the requested starts are
    accumulated while scanning, so memory is $O(d\,k)$ for $k$ starts (never
    $O(T d)$); the metrics of every suffix average are evaluated at the end.

    Pure and traceable: wrap it in ``jax.jit`` (``steps`` static) and ``jax.vmap`` it
    over training sets, keys and traced hyperparameters (build the optimizer inside
    the mapped function, e.g. ``sam(learning_rate, radius)`` with traced values).

    Args:
        problem: the problem.
        optimizer: an optax transform; ``flatjax.optim.sam``/``sa_gd``/``gd`` or any
            chain starting with ``sharpness_aware``.
        S: the training set, leading axis of size ``problem.n``.
        steps: $T \ge 1$, the number of iterates (so $T-1$ updates).
        w1: the initial point.
        maximizer: passed to the optimizer as an extra argument (SA-GD) and used to
            record ``saer`` when ``saer_radius`` is given.
        saer_radius: radius $r$ at which to record $F_S^r$ (needs ``maximizer``).
        suffix_starts: the 1-based starts $\tau$ (1 is always included); default
            ``default_suffix_starts(steps)``.
        record_population: record ``population_risk`` (of the suffix averages, and
            of every iterate when ``population_every_step``).
        population_every_step: also record it at every iterate (costly where it is
            an exact sum over sign patterns or a Monte Carlo estimate).
        key: randomness for Monte Carlo population risks (problems without an
            exact value); without it such a problem raises at run time.
        population_samples: Monte Carlo samples per evaluation when needed.
        extra_metrics: more per-iterate metrics, name -> function of $w$.
        project: project the iterates onto the domain.

    Returns:
        A ``RunResult``.

    Divergence is data, not an error: ``nonfinite_step`` records the first
    iterate whose value, norm, gradient norm or SAER is NaN or infinite (see
    ``RunResult``); the projection maps an update whose norm overflows to NaN, so
    it can never hide one.

    Raises:
        TypeError: for a ``problem`` that is not an ``AbstractProblem``, an
            ``optimizer`` that is not an optax transform, a non-array ``S`` or
            ``w1``, a non-callable ``maximizer``, a ``key`` that is not a PRNG key,
            non-int ``steps``, ``suffix_starts`` or ``population_samples``, or
            ``extra_metrics`` that is not a dict of functions.
        ValueError: for ``steps < 1``, an ``S`` whose shape is not
            ``(problem.n, *problem.example_shape)`` or (when concrete) whose
            examples the problem cannot draw, a ``w1`` of the wrong shape, bad
            ``suffix_starts``, ``population_samples < 2``, a negative or
            non-finite concrete ``saer_radius`` or one without a ``maximizer``.
            A traced ``S`` or ``saer_radius`` is checked at run time (see
            ``flatjax.runtime_checks``).

    Examples:
        >>> import jax
        >>> from flatjax.problems import SAMSharp
        >>> from flatjax.optim import sam
        >>> problem = SAMSharp()
        >>> result = run(problem, sam(0.5, 0.25), problem.sample(None), steps=8)
        >>> result.final, result.metrics["grad_norm"].max()  # SAM never moves
        (Array([0.], dtype=float64), Array(0., dtype=float64))
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "`run(optimizer=...)` must be an optax GradientTransformation (e.g. "
            f"`flatjax.optim.sam(0.1, 0.05)`), got a {type(optimizer).__name__}"
        )
    if saer_radius is not None and maximizer is None:
        raise ValueError("`run(saer_radius=...)` needs `maximizer=` to evaluate F_S^r")
    if saer_radius is not None:
        saer_radius = check_real("run", "saer_radius", saer_radius, lower=0.0)
    S, steps, starts, w1 = _check_inputs(
        "run",
        problem,
        S,
        steps,
        w1,
        suffix_starts,
        maximizer,
        key,
        population_samples,
        extra_metrics,
    )
    observe = _observer(
        problem, S, key, population_samples, saer_radius, maximizer, extra_metrics
    )

    def loss_fn(w):
        return problem.empirical_risk(w, S)

    def value_and_grad(w):
        return problem.value_and_grad(w, S)

    def grad_fn(w):
        return problem.value_and_grad(w, S)[1]

    taus = jnp.asarray(starts, jnp.int32)
    per_step_population = record_population and population_every_step
    domain = jnp.asarray(problem.domain_radius, problem.dtype)

    def step(carry, t):
        w, state, sums, acted, nonfinite = carry
        value, grad = value_and_grad(w)
        metrics = observe(w, t, value, tree_norm(grad), per_step_population)
        sums = sums + (t >= taus)[:, None].astype(w.dtype) * w[None, :]
        nonfinite = _flag_nonfinite(nonfinite, metrics, t)
        updates, state = optimizer.update(
            grad, state, w, grad_fn=grad_fn, loss_fn=loss_fn, maximizer=maximizer
        )
        w = optax.apply_updates(w, updates)
        if project:
            w, moved = _project(w, domain)
            acted = acted | moved
        return (w, state, sums, acted, nonfinite), metrics

    init = (
        w1,
        optimizer.init(w1),
        jnp.zeros((len(starts), problem.d), problem.dtype),
        jnp.asarray(False),
        jnp.asarray(-1, jnp.int32),
    )
    ts = jnp.arange(1, steps, dtype=jnp.int32)
    (w_last, _, sums, acted, nonfinite), metrics = jax.lax.scan(step, init, ts)
    # The last iterate w_T is observed but not updated.
    last_value, last_grad = value_and_grad(w_last)
    last = observe(
        w_last, jnp.int32(steps), last_value, tree_norm(last_grad), per_step_population
    )
    sums = sums + w_last[None, :]
    nonfinite = _flag_nonfinite(nonfinite, last, steps)
    return _finish(
        problem,
        S,
        observe,
        steps,
        metrics,
        last,
        w_last,
        sums,
        acted,
        nonfinite,
        taus,
        record_population,
    )


def _flag_nonfinite(nonfinite, metrics: dict, t) -> Int[Array, ""]:
    r"""``t`` if no step was flagged yet and a flagged metric is not finite.

    The norms $\|w_t\|$ and $\|\nabla F_S(w_t)\|$ are finite exactly when every
    entry is finite and the sum of squares does not overflow, so checking them
    costs no pass over $w_t$.
    """
    bad = jnp.asarray(False)
    for name in _FLAGGED_METRICS:
        if name in metrics:
            bad = bad | jnp.logical_not(jnp.isfinite(metrics[name]))
    return jnp.where((nonfinite < 0) & bad, t, nonfinite).astype(jnp.int32)


def _projection_scale(norm, radius) -> tuple[Array, Bool[Array, ""]]:
    """The factor projecting a point of norm ``norm`` onto the ball; whether it acts.

    ``radius / norm`` outside the ball and 1 inside; NaN when the norm is NaN or
    infinite, so an overflow is never scaled to a finite point (nor a state whose
    bookkeeping went NaN kept as if nothing happened): it stays flagged, and every
    later value is NaN.
    """
    acted = norm > radius
    finite = jnp.isfinite(norm)
    safe = jnp.where(acted & finite, norm, 1.0)
    scale = jnp.where(finite, jnp.where(acted, radius / safe, 1.0), jnp.nan)
    return scale.astype(jnp.result_type(norm)), acted


def _project(w, radius):
    """Project ``w`` onto the ball of ``radius`` (NaN if its norm is not finite)."""
    scale, acted = _projection_scale(tree_norm(w), radius)
    projected = jax.tree_util.tree_map(lambda x: (scale * x).astype(x.dtype), w)
    return projected, acted


def _check_inputs(
    call,
    problem,
    S,
    steps,
    w1,
    suffix_starts,
    maximizer,
    key,
    population_samples,
    extra_metrics,
):
    """Validate ``run``'s shared arguments: returns (S, steps, suffix starts, w1)."""
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            f"`{call}(problem=...)` must be a flatjax problem (an AbstractProblem), "
            f"got a {type(problem).__name__}"
        )
    steps = check_int(call, "steps", steps, 1)
    S = check_training_set(call, problem, S)
    S = check_in_support(call, problem, S)
    starts = _check_suffix_starts(
        call,
        default_suffix_starts(steps) if suffix_starts is None else suffix_starts,
        steps,
    )
    if w1 is None:
        w1 = problem.initial_point()
    else:
        w1 = check_vector(call, "w1", w1, problem.d).astype(problem.dtype)
    if maximizer is not None and not callable(maximizer):
        raise TypeError(
            f"`{call}(maximizer=...)` must be callable as maximizer(w, radius), got "
            f"a {type(maximizer).__name__}"
        )
    check_prng_key(call, key, optional=True)
    check_int(call, "population_samples", population_samples, 2)
    if extra_metrics is not None:
        if not isinstance(extra_metrics, dict) or not all(
            isinstance(name, str) and callable(fn) for name, fn in extra_metrics.items()
        ):
            raise TypeError(
                f"`{call}(extra_metrics=...)` must be a dict of name -> function of "
                f"w, got {extra_metrics!r}"
            )
        clash = sorted(set(extra_metrics) & {*_FLAGGED_METRICS, "population_risk"})
        if clash:
            raise ValueError(
                f"`{call}(extra_metrics=...)` must not reuse the built-in metric "
                f"names {clash}"
            )
    return S, steps, starts, w1


def _observer(problem, S, key, population_samples, saer_radius, maximizer, extra):
    """The per-iterate metrics of ``run``: ``observe(w, t, value, grad_norm, ...)``."""
    extra = dict(extra or {})

    def observe(w, t, value, grad_norm, population, saer=None):
        metrics = {"empirical_risk": value, "iterate_norm": tree_norm(w)}
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        if population:
            step_key = None if key is None else jax.random.fold_in(key, t)
            risk = problem.population_risk(w, step_key, num_samples=population_samples)
            metrics["population_risk"] = risk.value
            metrics["population_exact"] = risk.exact
        if saer_radius is not None:
            if saer is None:
                saer = problem.empirical_risk(w + maximizer(w, saer_radius), S)
            metrics["saer"] = saer
        for name, fn in extra.items():
            metrics[name] = fn(w)
        return metrics

    return observe


def _suffix_averages(sums, steps, taus, dtype):
    r"""Suffix averages $\hat w_\tau = \frac{1}{T-\tau+1}\sum_{t\ge\tau} w_t$ from sums.

    ``sums`` is a pytree whose leaves have the suffix starts ``taus`` on axis 0.
    """
    counts = (steps - taus + 1).astype(dtype)
    return jax.tree_util.tree_map(
        lambda x: x / counts.reshape(-1, *[1] * (x.ndim - 1)), sums
    )


def _finish(
    problem,
    S,
    observe,
    steps,
    metrics,
    last,
    w_last,
    sums,
    acted,
    nonfinite,
    taus,
    record_population,
) -> RunResult:
    """Append the last iterate's metrics and evaluate the suffix averages."""
    metrics = jax.tree_util.tree_map(
        lambda history, final: jnp.concatenate([history, final[None]]), metrics, last
    )
    averages = _suffix_averages(sums, steps, taus, problem.dtype)

    def at_average(w, t):
        value, _ = problem.value_and_grad(w, S)
        return observe(w, t, value, None, record_population)

    suffix_metrics = jax.vmap(at_average)(averages, steps + taus)
    return RunResult(metrics, w_last, taus, averages, suffix_metrics, acted, nonfinite)
