"""Run an optax transform on a problem with ``lax.scan``: metrics, averages, flags."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import check_int
from ..optim import tree_norm
from ..optim._transforms import project_point
from ..problems._base import AbstractProblem


class RunResult(NamedTuple):
    r"""What ``run`` returns; every array gains a leading axis under ``vmap``.

    The convention of the paper digest (§1, [CHECKED]): a run of ``steps`` $= T$
    yields the iterates $w_1$ (the initial point), $w_2, \dots, w_T$, i.e. $T-1$
    updates; averages are over these $T$ iterates.

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
        nonfinite_step: the first 1-based $t$ whose iterate or gradient is NaN/Inf,
            or -1 (a per-run flag: a bad run does not stop a sweep).
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


def _check_suffix_starts(starts, steps: int) -> tuple[int, ...]:
    starts = tuple(int(check_int("run", "suffix_starts", s, 1)) for s in starts)
    if any(s > steps for s in starts):
        raise ValueError(
            f"`run(suffix_starts=...)` must lie in [1, steps={steps}], got {starts}"
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

    Raises:
        ValueError: for ``steps < 1``, a training set of the wrong size, bad
            ``suffix_starts``, or ``saer_radius`` without a ``maximizer``.

    Examples:
        >>> import jax
        >>> from flatjax.problems import SAMSharp
        >>> from flatjax.optim import sam
        >>> problem = SAMSharp()
        >>> result = run(problem, sam(0.5, 0.25), problem.sample(None), steps=8)
        >>> result.final, result.metrics["grad_norm"].max()  # SAM never moves
        (Array([0.], dtype=float64), Array(0., dtype=float64))
    """
    steps, starts, w1 = _check_inputs(problem, S, steps, w1, suffix_starts)
    if saer_radius is not None and maximizer is None:
        raise ValueError("`run(saer_radius=...)` needs `maximizer=` to evaluate F_S^r")
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

    def step(carry, t):
        w, state, sums, acted, nonfinite = carry
        value, grad = value_and_grad(w)
        metrics = observe(w, t, value, tree_norm(grad), per_step_population)
        sums = sums + (t >= taus)[:, None].astype(w.dtype) * w[None, :]
        bad = jnp.logical_not(jnp.all(jnp.isfinite(w)) & jnp.all(jnp.isfinite(grad)))
        nonfinite = jnp.where((nonfinite < 0) & bad, t, nonfinite)
        updates, state = optimizer.update(
            grad, state, w, grad_fn=grad_fn, loss_fn=loss_fn, maximizer=maximizer
        )
        w = optax.apply_updates(w, updates)
        if project:
            w, moved = project_point(w, problem.domain_radius)
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
    bad = jnp.logical_not(
        jnp.all(jnp.isfinite(w_last)) & jnp.all(jnp.isfinite(last_grad))
    )
    nonfinite = jnp.where((nonfinite < 0) & bad, steps, nonfinite)
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


def _check_inputs(problem, S, steps, w1, suffix_starts):
    """Validate ``run``'s shared arguments: (steps, suffix starts, w1)."""
    steps = check_int("run", "steps", steps, 1)
    if S.shape[0] != problem.n:
        raise ValueError(
            f"`run(S=...)` must have {problem.n} examples (problem.n), got shape "
            f"{S.shape}"
        )
    starts = _check_suffix_starts(
        default_suffix_starts(steps) if suffix_starts is None else suffix_starts, steps
    )
    w1 = problem.initial_point() if w1 is None else jnp.asarray(w1, problem.dtype)
    if w1.shape != (problem.d,):
        raise ValueError(
            f"`run(w1=...)` must have shape ({problem.d},), got {w1.shape}"
        )
    return steps, starts, w1


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
    counts = (steps - taus + 1).astype(problem.dtype)
    averages = sums / counts[:, None]

    def at_average(w, t):
        value, _ = problem.value_and_grad(w, S)
        return observe(w, t, value, None, record_population)

    suffix_metrics = jax.vmap(at_average)(averages, steps + taus)
    return RunResult(metrics, w_last, taus, averages, suffix_metrics, acted, nonfinite)
