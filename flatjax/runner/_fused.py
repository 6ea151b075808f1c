"""``run_fused``: ``run``'s result from a problem's hand-fused trajectory kernel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_real
from ..optim import ALGORITHMS, FunctionMaximizer, make_optimizer
from ..problems import AbstractProblem
from ._runner import (
    RunResult,
    _check_inputs,
    _finish,
    _flag_nonfinite,
    _observer,
    _projection_scale,
    _suffix_averages,
    run,
)


def run_fused(
    problem: AbstractProblem,
    algorithm: str,
    S: Array,
    steps: int,
    *,
    learning_rate,
    radius=0.0,
    maximizer=None,
    record_saer: bool = False,
    w1: Array | None = None,
    suffix_starts: Sequence[int] | None = None,
    record_population: bool = True,
    population_every_step: bool = True,
    key: PRNGKeyArray | None = None,
    population_samples: int = 4096,
    extra_metrics: dict[str, Callable[[Array], Array]] | None = None,
    project: bool = True,
) -> RunResult:
    r"""``run`` for a named optimizer, through the problem's fused kernel if it has one.

    Returns what ``run(problem, make_optimizer(algorithm, ...), S, steps,
    maximizer=maximizer, saer_radius=radius if record_saer else None, ...)`` returns
    with the ``flatjax.optim`` transform of that name (``flatjax.optim.ALGORITHMS``),
    computed by
    ``problem.fused_kernel`` (``SAMTrap``: GD and SAM; ``SAGDTrap``: GD, and SA-GD
    with ``adversarial_maximizer``): the iterate stays in the problem's block
    layout, each step makes one or two passes over it, and $F_S$,
    $\|\nabla F_S\|$, $\|w\|$ and (SA-GD) $F_S^r$ come out of the same passes.
    Otherwise it is ``run`` itself. The two agree to rounding (the fused sums are
    ordered differently): tests hold whole trajectories and every metric equal to
    ``run`` at a relative 1e-12.

    The non-finite flag follows ``run``'s rule (``RunResult.nonfinite_step``), read
    from the kernel's $\|w_t\|$, $F_S(w_t)$, $\|\nabla F_S(w_t)\|$ and SAER (a
    norm that overflows a finite iterate counts, and the projection of an
    overflowing iterate is NaN, never 0). Per-step population risks, extra metrics
    and (where the kernel does not give it) the SAER rebuild the flat iterate from
    the layout, which costs one copy per step.

    Args:
        problem: the problem.
        algorithm: a name in ``flatjax.optim.ALGORITHMS``: ``"gd"``, ``"sam"``
            (normalized ascent), ``"sa_gd"`` (exact ascent with ``maximizer``),
            ``"usam"`` or ``"asam"`` (these two always through ``run``).
        S: the training set.
        steps: $T \ge 1$ iterates.
        learning_rate: $\eta \ge 0$ (may be traced, e.g. under ``vmap``: then
            checked at run time, see ``flatjax.runtime_checks``).
        radius: $r \ge 0$ (may be traced; unused by ``"gd"``).
        maximizer: the exact maximizer of SA-GD.
        record_saer: record $F_S^r(w_t)$ at ``radius`` (needs ``maximizer``).
        w1: the initial point, as in ``run``.
        suffix_starts: as in ``run``.
        record_population: as in ``run``.
        population_every_step: as in ``run``.
        key: as in ``run``.
        population_samples: as in ``run``.
        extra_metrics: as in ``run``.
        project: as in ``run``.

    Returns:
        A ``RunResult``.

    Raises:
        ValueError: for an unknown ``algorithm``, a negative or non-finite
            concrete ``learning_rate`` or ``radius``, ``record_saer`` without a
            ``maximizer`` (or ``"sa_gd"`` without one), and everything ``run``
            refuses.
        TypeError: for a ``learning_rate`` or ``radius`` that is not a real
            scalar, and everything ``run`` refuses.

    Examples:
        >>> import jax
        >>> from flatjax.problems import SAMTrap
        >>> problem = SAMTrap(6, 8, learning_rate=0.5, radius=0.1)
        >>> S = problem.sample(jax.random.key(0))
        >>> result = run_fused(
        ...     problem, "sam", S, 8, learning_rate=0.5, radius=0.1,
        ...     record_population=False,
        ... )
        >>> result.metrics["empirical_risk"].shape, result.final.shape
        ((8,), (513,))
    """
    call = "run_fused"
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(
            f"`{call}(algorithm=...)` must be one of {sorted(ALGORITHMS)}, got "
            f"{algorithm!r}"
        )
    learning_rate = check_real(call, "learning_rate", learning_rate, lower=0.0)
    radius = check_real(call, "radius", radius, lower=0.0)
    if record_saer and maximizer is None:
        raise ValueError(f"`{call}(record_saer=True)` needs `maximizer=`")
    if ALGORITHMS[algorithm].needs_maximizer and maximizer is None:
        raise ValueError(
            f"`{call}(algorithm={algorithm!r})` needs `maximizer=` (an exact ascent)"
        )
    saer_radius = radius if record_saer else None
    zero_start = w1 is None  # before _check_inputs fills in w_1 = 0
    S, steps, starts, w1 = _check_inputs(
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
    )
    # A problem's kernel recognizes its own maximizers by type; FunctionMaximizer is
    # optim's wrapper (problems sit below optim), so the kernel sees what it wraps.
    inner = maximizer.fn if isinstance(maximizer, FunctionMaximizer) else maximizer
    kernel = problem.fused_kernel(
        S, algorithm, learning_rate, radius, inner, zero_start=zero_start
    )
    if kernel is None:
        hyperparameters = {"learning_rate": learning_rate, "radius": radius}
        names = ALGORITHMS[algorithm].hyperparameters
        return run(
            problem,
            # run passes grad_fn(w) itself as the gradient: the transform's check
            # that nothing stands before it could never fire, so it is left out.
            make_optimizer(
                algorithm,
                check_gradient=False,
                **{h: hyperparameters[h] for h in names},
            ),
            S,
            steps,
            w1=w1,
            maximizer=maximizer,
            saer_radius=saer_radius,
            suffix_starts=suffix_starts,
            record_population=record_population,
            population_every_step=population_every_step,
            key=key,
            population_samples=population_samples,
            extra_metrics=extra_metrics,
            project=project,
        )
    observe = _observer(
        problem, S, key, population_samples, saer_radius, maximizer, extra_metrics
    )
    taus = jnp.asarray(starts, jnp.int32)
    per_step_population = record_population and population_every_step
    state = kernel.init(w1)
    # A kernel that evaluates run's metrics in its own layout never needs the flat
    # iterate (unless extra metrics ask for it).
    in_layout = not extra_metrics and (
        kernel.observe(kernel.iterate(state), population=False, saer=False) is not None
    )
    needs_flat = (per_step_population and not in_layout) or bool(extra_metrics)
    radius_domain = jnp.asarray(problem.domain_radius, problem.dtype)

    def projection(norm):
        """The projection factor of an iterate w_t with t > 1 (w_1 is taken as given).

        As in ``run``, an infinite norm (an overflow) gives a NaN factor, never 0.
        It depends on the norm alone: a select on the step counter here was fused
        into every pass that reads the factor and evaluated per entry.
        """
        if not project:
            return jnp.asarray(1.0, problem.dtype), jnp.asarray(False)
        scale, moved = _projection_scale(norm, radius_domain)
        return scale.astype(problem.dtype), moved

    def segment(t):
        """The suffix segment of iterate t: the j with tau_j <= t < tau_{j+1}."""
        return jnp.sum(taus <= t) - 1  # elementwise (searchsorted is a loop)

    def accumulate(sums, state, scale, t):
        # One running sum per segment [tau_j, tau_{j+1}): one pass per step
        # whatever the number of suffix starts; suffix sums are summed at the end.
        if single:  # one segment: a plain running sum, without a segment axis
            return jax.tree_util.tree_map(
                lambda total, x: total + scale * x, sums, kernel.iterate(state)
            )
        j = segment(t)

        def add(total, x):
            current = jax.lax.dynamic_index_in_dim(total, j, keepdims=False)
            return jax.lax.dynamic_update_index_in_dim(
                total, current + scale * x, j, axis=0
            )

        return jax.tree_util.tree_map(add, sums, kernel.iterate(state))

    def scaled(state, scale):
        return jax.tree_util.tree_map(lambda x: scale * x, kernel.iterate(state))

    def visit(state, norm, scale, t, nonfinite):
        """The update from iterate t (= scale * state) and its metrics."""
        new, found = kernel.step(state, scale)
        metrics = {
            "empirical_risk": found.empirical_risk,
            "iterate_norm": scale * norm,
            "grad_norm": found.grad_norm,
        }
        if needs_flat or (record_saer and found.saer is None):
            w = kernel.flat(scaled(state, scale))
            metrics = observe(
                w,
                t,
                found.empirical_risk,
                found.grad_norm,
                per_step_population,
                found.saer,
            ) | {"iterate_norm": metrics["iterate_norm"]}
        else:
            if record_saer:
                metrics["saer"] = found.saer
            if per_step_population:
                at = kernel.observe(scaled(state, scale), population=True, saer=False)
                assert at is not None  # in_layout: the kernel observes in its layout
                metrics["population_risk"] = at["population_risk"]
                metrics["population_exact"] = at["population_exact"]
        # iterate_norm = scale * norm is NaN or infinite whenever the state's norm
        # is (an overflowed norm has a NaN scale), so it carries the flag.
        nonfinite = _flag_nonfinite(nonfinite, metrics, t)
        return new, nonfinite, metrics

    def body(carry, t):
        state, norm, scale, sums, acted, nonfinite = carry
        new, nonfinite, metrics = visit(state, norm, scale, t, nonfinite)
        # The next iterate's norm, projection and share of the sums are taken
        # right after it is written: the step's input is then read by the step
        # alone, so XLA updates an elementwise update in place (no copy of the
        # carry; an update that reads neighbours, as SAMTrap's chain, cannot be).
        new_norm = kernel.norm(new)
        new_scale, moved = projection(new_norm)
        sums = accumulate(sums, new, new_scale, t + 1)
        return (new, new_norm, new_scale, sums, acted | moved, nonfinite), metrics

    norm = kernel.norm(state)
    # w_1 is taken as given, as in run: never projected.
    scale, acted = jnp.asarray(1.0, problem.dtype), jnp.asarray(False)
    single = len(starts) == 1
    sums = jax.tree_util.tree_map(
        lambda x: jnp.zeros((() if single else (len(starts),)) + x.shape, x.dtype),
        kernel.iterate(state),
    )
    sums = accumulate(sums, state, scale, 1)
    init = (state, norm, scale, sums, acted, jnp.asarray(-1, jnp.int32))
    ts = jnp.arange(1, steps, dtype=jnp.int32)
    carry, metrics = jax.lax.scan(body, init, ts, unroll=kernel.unroll)
    state, norm, scale, sums, acted, nonfinite = carry
    # The last iterate w_T is observed (its update is discarded).
    _, nonfinite, last = visit(state, norm, scale, jnp.int32(steps), nonfinite)
    if single:
        sums = jax.tree_util.tree_map(lambda x: x[None], sums)
    # Suffix sums from the segments' sums: sum_{t >= tau_j} = segments j, j+1, ...
    sums = jax.tree_util.tree_map(
        lambda x: jnp.flip(jnp.cumsum(jnp.flip(x, 0), axis=0), 0), sums
    )
    final = scaled(state, scale)
    if not in_layout:
        return _finish(
            problem,
            S,
            observe,
            steps,
            metrics,
            last,
            kernel.flat(final),
            jax.vmap(kernel.flat)(sums),
            acted,
            nonfinite,
            taus,
            record_population,
        )
    # The metrics of the suffix averages in the kernel's layout: the flat vectors
    # of the result are built only if the caller uses them (under jit, XLA drops
    # them otherwise).
    metrics = jax.tree_util.tree_map(
        lambda history, final: jnp.concatenate([history, final[None]]), metrics, last
    )
    averages = _suffix_averages(sums, steps, taus, problem.dtype)
    suffix_metrics = cast(
        dict,
        jax.vmap(
            lambda average: kernel.observe(
                average, population=record_population, saer=saer_radius is not None
            )
        )(averages),
    )
    return RunResult(
        metrics,
        kernel.flat(final),
        taus,
        jax.vmap(kernel.flat)(averages),
        suffix_metrics,
        acted,
        nonfinite,
    )
