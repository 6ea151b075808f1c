"""Shared machinery of the problems: base class, validation, exact expectations."""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._checks import (
    check_int,
    check_prng_key,
    check_training_set,
    check_vector,
)
from ._kernel import AbstractFusedKernel


class RiskEstimate(NamedTuple):
    """A population risk, exact or estimated, with its provenance.

    Attributes:
        value: the risk $F(w)$ (exact), or an unbiased Monte Carlo estimate of it.
        stderr: the standard error of ``value``; exactly 0 when ``exact`` is true.
        exact: true when ``value`` is the exact expectation (closed form or an exact
            finite sum), false when it is a Monte Carlo estimate.
    """

    value: Float[Array, ""]
    stderr: Float[Array, ""]
    exact: Bool[Array, ""]


class AbstractProblem(eqx.Module):
    """A stochastic convex optimization problem with an exact sampler.

    A problem is an ``equinox.Module``: sizes are static fields, constants are array
    fields, so an instance is a pytree that ``jax.jit`` and ``jax.vmap`` see through.
    A training set ``S`` is an array whose leading axis indexes the ``n`` examples.

    Subclasses implement the readable per-example ``loss(w, z)``; ``empirical_risk``
    defaults to the mean of its ``vmap`` and is overridden by a faster structured
    path where one exists (tests hold the fast path to the readable one).

    Every method callers use is declared here, with a default where a problem may
    have nothing to offer (``sample_conditioned``, ``saer_minimizer``,
    ``extra_metrics``, ``in_support``, ``fused_kernel``): callers never probe with
    ``hasattr``. The public methods check ``w`` and ``S`` against ``d``, ``n`` and
    ``example_shape`` at trace time (free: shapes are static).
    """

    n: eqx.AbstractVar[int]
    dtype: eqx.AbstractVar[np.dtype]

    @property
    @abc.abstractmethod
    def d(self) -> int:
        """Dimension of the parameter vector $w$."""

    @property
    @abc.abstractmethod
    def beta(self) -> float:
        r"""Smoothness constant $\beta$ of every $f(\cdot, z)$."""

    @property
    @abc.abstractmethod
    def lipschitz(self) -> float:
        r"""Lipschitz constant of every $f(\cdot, z)$ on the domain $W$."""

    @property
    def domain_radius(self) -> float:
        """Radius of the domain $W$, a Euclidean ball centred at 0."""
        return 1.0

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example ``z`` (a training set has ``(n, *example_shape)``).

        Defaults to what ``sample`` returns (found by ``jax.eval_shape``, no
        compute); the constructions state it directly.
        """
        return tuple(jax.eval_shape(self.sample, jax.random.key(0)).shape[1:])

    def in_support(self, z: Array) -> Bool[Array, ""]:
        r"""Whether the example ``z`` can be drawn from $\mathcal{D}$ (default: True).

        ``flatjax.runner.run`` refuses a training set with an example outside the
        support (e.g. one drawn from another problem of the same shape), so a
        problem with a discrete or constrained support overrides this.
        """
        del z
        return jnp.asarray(True)

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray) -> Array:
        r"""Draw a training set $S$ of ``n`` i.i.d. examples from $\mathcal{D}$."""

    def sample_conditioned(self, key: PRNGKeyArray) -> Array:
        r"""A training set drawn given the theorem's good event (default: ``sample``).

        The constructions override it with an exact rejection sampler of
        $\mathcal{D}^n$ conditioned on their good event; a problem without one
        draws unconditionally, so a sweep may ask every problem for it.
        """
        return self.sample(key)

    def saer_minimizer(self, S: Array, radius) -> tuple[Array, Array] | None:
        r"""A minimizer of the SAER $F_S^r$ in closed form and its value, or None.

        ``flatjax.optim.sa_erm`` returns it when the problem knows one (the
        paper's minimizers); the default None sends it to its numerical path.

        Args:
            S: the training set.
            radius: $r \ge 0$.
        """
        del S, radius
        return None

    def extra_metrics(self, S: Array) -> dict[str, Callable[[Array], Array]]:
        r"""Problem-specific per-iterate metrics: name -> function of $w$ (default {}).

        A sweep records them next to the risks (e.g. ``SAMTrap``'s ``certificate``,
        the exact lower bound of Theorem 7); pass them to ``run`` as
        ``extra_metrics=problem.extra_metrics(S)``.

        Args:
            S: the training set the metrics may depend on.
        """
        del S
        return {}

    def _check_w(self, call: str, w, name: str = "w") -> Array:
        """Return the parameter vector ``w`` as an array of shape ``(d,)``, or raise.

        Raises:
            TypeError: for a non-array (a list, a string) or a non-real dtype.
            ValueError: for a shape other than ``(d,)``.
        """
        return check_vector(call, name, w, self.d)

    def _check_S(self, call: str, S, *, any_count: bool = False, name: str = "S"):
        """Return ``S`` as an array of shape ``(n, *example_shape)``, or raise.

        With ``any_count``, any number of examples (at least 1) is accepted.

        Raises:
            TypeError: for a non-array or a non-real dtype.
            ValueError: for the wrong shape.
        """
        return check_training_set(call, self, S, name=name, any_count=any_count)

    def _check_population(self, call: str, w, key, num_samples) -> Array:
        """Check ``population_risk``'s arguments; return ``w`` as an array."""
        check_prng_key(call, key, optional=True)
        check_int(call, "num_samples", num_samples, 2)
        return self._check_w(call, w)

    @abc.abstractmethod
    def loss(self, w: Float[Array, " d"], z: Array) -> Float[Array, ""]:
        """The loss $f(w, z)$ of one example (the readable reference definition)."""

    @abc.abstractmethod
    def population_risk(
        self,
        w: Float[Array, " d"],
        key: PRNGKeyArray | None = None,
        *,
        num_samples: int = 100_000,
    ) -> RiskEstimate:
        r"""The population risk $F(w)=\mathbb{E}_z f(w,z)$, exact where possible."""

    def empirical_risk(self, w: Float[Array, " d"], S: Array) -> Float[Array, ""]:
        r"""The empirical risk $F_S(w) = \frac1n\sum_i f(w, z_i)$."""
        call = f"{type(self).__name__}.empirical_risk"
        w = self._check_w(call, w)
        S = self._check_S(call, S, any_count=True)
        return jnp.mean(jax.vmap(self.loss, in_axes=(None, 0))(w, S))

    def value_and_grad(
        self, w: Float[Array, " d"], S: Array
    ) -> tuple[Float[Array, ""], Float[Array, " d"]]:
        r"""$F_S(w)$ and $\nabla F_S(w)$ together (what the runner calls every step).

        Defaults to autodiff of ``empirical_risk``; a problem may override it with a
        hand-fused gradient, which tests hold equal to the autodiff of ``loss``.
        """
        call = f"{type(self).__name__}.value_and_grad"
        w = self._check_w(call, w)
        S = self._check_S(call, S)
        return jax.value_and_grad(self.empirical_risk)(w, S)

    def initial_point(self) -> Float[Array, " d"]:
        """The initial point $w_1 = 0$ used by the paper's proofs."""
        return jnp.zeros((self.d,), self.dtype)

    def fused_kernel(
        self,
        S: Array,
        algorithm: str,
        learning_rate,
        radius,
        maximizer=None,
        *,
        zero_start: bool = False,
    ) -> AbstractFusedKernel | None:
        r"""A hand-fused trajectory kernel for ``algorithm`` on ``S``, or ``None``.

        ``flatjax.runner.run_fused`` calls it and falls back to ``flatjax.runner.run``
        with the optax transform of the same name when it returns ``None`` (the
        default). A problem returns a kernel only for the (algorithm, maximizer)
        pairs it implements exactly.

        Args:
            S: the training set.
            algorithm: ``"gd"``, ``"sam"`` or ``"sa_gd"``.
            learning_rate: $\eta$ (may be traced).
            radius: $r$ (may be traced; ignored by ``"gd"``).
            maximizer: the exact maximizer of ``"sa_gd"``.
            zero_start: the run starts at ``initial_point()`` (0); a kernel may
                then use a layout that only represents the points the run can
                reach from there.
        """
        return None


# ----------------------------------------------------------------------------------
# Numerics shared by the constructions.


def flat_half_square(s: Array, rho: Array) -> Array:
    r"""$h_\rho(s) = \tfrac12[\sqrt{s} - \rho]_+^2$ for $s \ge 0$, gradients finite.

    The composition used by Theorems 1 and 3 (Lemma 2 of arXiv 2511.03548). Autodiff
    of $\sqrt{s}$ at $s=0$ gives $\infty\cdot 0 = $ NaN; the double ``where`` keeps
    both the value and the gradient finite there (an implementation note; see the errata
    page).
    """
    positive = s > 0
    root = jnp.sqrt(jnp.where(positive, s, 1.0))
    value = 0.5 * jnp.square(jnp.maximum(root - rho, 0.0))
    return jnp.where(positive, value, 0.5 * jnp.square(jnp.maximum(-rho, 0.0)))


def _patterns(k: int, dtype) -> np.ndarray:
    """All $2^k$ binary vectors of length k, as a (2^k, k) array."""
    return np.array(list(itertools.product((0.0, 1.0), repeat=k)), dtype=dtype).reshape(
        2**k, k
    )


def bernoulli_sum_expectation(
    fn,
    offset: Float[Array, ""],
    weights: Float[Array, " m"],
    *,
    max_support: int,
    key: PRNGKeyArray | None,
    num_samples: int,
    call: str,
) -> RiskEstimate:
    r"""$\mathbb{E}\,\mathrm{fn}(c + \sum_i b_i a_i)$, $b_i$ i.i.d. Bernoulli(1/2).

    Exact when at most ``max_support`` of the weights $a_i$ are non-zero: the
    expectation is then a finite sum over $2^k$ patterns of the active coordinates
    (the others do not change the argument). Otherwise an unbiased Monte Carlo
    estimate over ``num_samples`` draws, which needs ``key``; without a key that case
    is a runtime error (``equinox.error_if``), never a silent wrong value.

    Args:
        fn: an elementwise function of the argument.
        offset: the constant $c$.
        weights: the vector $a$.
        max_support: the largest active support summed exactly (static).
        key: randomness for the Monte Carlo branch, or None.
        num_samples: Monte Carlo sample size.
        call: the public call, for the error message.

    Returns:
        A ``RiskEstimate``.
    """
    m = weights.shape[0]
    k = min(max_support, m)
    # A non-finite iterate (a diverged run) has a NaN risk: the value is NaN, marked
    # inexact, and never an error about its support (NaN != 0 would count it).
    finite = jnp.all(jnp.isfinite(weights)) & jnp.isfinite(offset)
    support = jnp.sum(weights != 0)
    _, top = jax.lax.top_k(jnp.abs(weights), k)
    active = weights[top]
    patterns = jnp.asarray(_patterns(k, weights.dtype))
    exact_value = jnp.mean(fn(offset + patterns @ active))
    is_exact = (support <= k) & finite
    zero = jnp.zeros((), weights.dtype)
    nan = jnp.full((), jnp.nan, weights.dtype)
    if key is None:
        exact_value = eqx.error_if(
            exact_value,
            jnp.logical_not(is_exact) & finite,
            f"`{call}`: the iterate has more than {k} non-zero coordinates that "
            "matter (max_support), so the exact finite sum is too large; pass "
            "`key=` for an unbiased Monte Carlo estimate",
        )
        return RiskEstimate(jnp.where(finite, exact_value, nan), zero, is_exact)

    def monte_carlo(_):
        bits = jax.random.bernoulli(key, 0.5, (num_samples, m)).astype(weights.dtype)
        values = fn(offset + bits @ weights)
        return jnp.mean(values), jnp.std(values, ddof=1) / math.sqrt(num_samples)

    value, stderr = jax.lax.cond(
        is_exact | jnp.logical_not(finite),
        lambda _: (exact_value, zero),
        monte_carlo,
        None,
    )
    return RiskEstimate(jnp.where(finite, value, nan), stderr, is_exact)


def rejection_sample(
    sample_fn, event_fn, key: PRNGKeyArray, *, acceptance_probability=None
):
    r"""Draw from ``sample_fn`` conditioned on ``event_fn`` by rejection.

    Rejection sampling gives exactly the conditional distribution. Candidate 0 is
    drawn with ``first_key`` of ``first_key, key = split(key)``, candidate $i \ge 1$
    with ``sub`` of ``key, sub = split(key)`` at the $i$-th step; the first accepted
    candidate is returned. The expected number of draws is 1/P(event).

    Alone, this is a ``lax.while_loop``. Under ``jax.vmap`` (a custom batching
    rule), a plain batched while loop would draw for every lane until the *last*
    lane is accepted (about 6 draws per lane for a block of 128 lanes at
    P = 0.632 instead of 1.6); instead the first ``K`` candidates of every lane
    are drawn at once, and only the lanes that rejected all of them are gathered,
    a few at a time, into a small batch that continues their own key chains.
    Every lane's result is identical to the sequential loop's, candidate by
    candidate, with or without ``vmap``.

    Args:
        sample_fn: ``key -> S``, the unconditioned sampler.
        event_fn: ``S -> bool``, the event to condition on.
        key: the PRNG key.
        acceptance_probability: P(event) when known (a Python float in (0, 1]);
            it sets ``K``, the candidates drawn at once under ``vmap``, to the
            smallest count whose acceptance probability is at least 1/2. It never
            changes the result.

    Returns:
        The first accepted candidate.
    """
    candidates = _candidates_at_once(acceptance_probability)
    sample = eqx.filter_closure_convert(sample_fn, key)
    event = eqx.filter_closure_convert(event_fn, jax.eval_shape(sample, key))
    # Closed-over arrays (a problem's fields, possibly batched tracers) travel as
    # arguments of the custom-batched function; the traced programs stay static.
    sample_arrays, sample_static = eqx.partition(sample, eqx.is_array)
    event_arrays, event_static = eqx.partition(event, eqx.is_array)
    return _batched_rejection(candidates, sample_static, event_static)(
        sample_arrays, event_arrays, key
    )


#: Lanes gathered into one fallback batch under ``vmap`` (small: a batched while
#: loop runs until its last lane is accepted, so its width is paid every step).
_FALLBACK_LANES = 4


def _candidates_at_once(acceptance_probability) -> int:
    """K: the fewest candidates accepted with probability >= 1/2 (1 if unknown)."""
    if acceptance_probability is None:
        return 1
    p = float(acceptance_probability)
    if not 0.0 < p <= 1.0:
        raise ValueError(
            "`rejection_sample(acceptance_probability=...)` must be in (0, 1], got "
            f"{acceptance_probability!r}"
        )
    if p == 1.0:
        return 1
    return max(1, math.ceil(math.log(0.5) / math.log1p(-p)))


def _sequential_rejection(sample, event, key):
    """The reference loop: candidate 0 from ``first_key``, then one split a step."""
    first_key, key = jax.random.split(key)
    first = sample(first_key)

    def cond(carry):
        _, S = carry
        return jnp.logical_not(event(S))

    def body(carry):
        key, _ = carry
        key, sub = jax.random.split(key)
        return key, sample(sub)

    _, S = jax.lax.while_loop(cond, body, (key, first))
    return S


def _batched_rejection(candidates: int, sample_static, event_static):
    """``rejection_sample`` with its ``vmap`` rule, for K = ``candidates``."""

    @jax.custom_batching.custom_vmap
    def sampler(sample_arrays, event_arrays, key):
        sample = eqx.combine(sample_arrays, sample_static)
        event = eqx.combine(event_arrays, event_static)
        return _sequential_rejection(sample, event, key)

    @sampler.def_vmap
    def rule(axis_size, in_batched, sample_arrays, event_arrays, key):
        sample_batched, event_batched, key_batched = in_batched
        if not key_batched:
            key = jax.vmap(lambda _: key)(jnp.arange(axis_size))
        sample_axes = jax.tree.map(lambda b: 0 if b else None, sample_batched)
        event_axes = jax.tree.map(lambda b: 0 if b else None, event_batched)

        def draw(arrays, keys):
            fn = eqx.combine(arrays, sample_static)
            return jax.vmap(fn)(keys)

        def accept(arrays, S):
            fn = eqx.combine(arrays, event_static)
            return jax.vmap(fn)(S)

        # The first K candidates of every lane, all at once.
        def chain(key):
            first_key, key = jax.random.split(key)
            subs = [first_key]
            for _ in range(candidates - 1):
                key, sub = jax.random.split(key)
                subs.append(sub)
            return key, jnp.stack(subs)

        keys, subs = jax.vmap(chain)(key)
        drawn = jax.vmap(draw, in_axes=(sample_axes, 0))(sample_arrays, subs)
        accepted = jax.vmap(accept, in_axes=(event_axes, 0))(event_arrays, drawn)
        lanes = jnp.arange(axis_size)
        S = drawn[lanes, jnp.argmax(accepted, axis=1)]
        done = jnp.any(accepted, axis=1)

        # Lanes that rejected all K continue their own key chains, a few at once.
        def continue_lane(sample_arrays, event_arrays, key, S, done):
            sample = eqx.combine(sample_arrays, sample_static)
            event = eqx.combine(event_arrays, event_static)

            def body(carry):
                key, _, _ = carry
                key, sub = jax.random.split(key)
                S = sample(sub)
                return key, S, event(S)

            _, S, _ = jax.lax.while_loop(
                lambda carry: jnp.logical_not(carry[2]), body, (key, S, done)
            )
            return S

        width = min(_FALLBACK_LANES, axis_size)

        def fallback(carry):
            S, done = carry
            index = jnp.nonzero(
                jnp.logical_not(done), size=width, fill_value=axis_size
            )[0]
            valid = index < axis_size
            safe = jnp.minimum(index, axis_size - 1)

            def rows(arrays, batched):
                return jax.tree.map(lambda x, b: x[safe] if b else x, arrays, batched)

            S_new = jax.vmap(continue_lane, in_axes=(sample_axes, event_axes, 0, 0, 0))(
                rows(sample_arrays, sample_batched),
                rows(event_arrays, event_batched),
                keys[safe],
                S[safe],
                jnp.logical_not(valid),
            )
            S = S.at[index].set(S_new, mode="drop")
            done = done.at[index].set(True, mode="drop")
            return S, done

        S, _ = jax.lax.while_loop(
            lambda carry: jnp.logical_not(jnp.all(carry[1])), fallback, (S, done)
        )
        return S, True

    return sampler


def unseen_probability(n: int) -> float:
    r"""$P(\exists I: z(I)=0\ \forall z\in S) = 1-(1-2^{-n})^{2^n}$ (exact)."""
    return -math.expm1(2**n * math.log1p(-(2.0**-n)))


def exactly_one_unseen_probability(n: int) -> float:
    r"""$P(\text{exactly one } I \text{ unseen}) = (1-2^{-n})^{2^n-1}$ (exact).

    Exactly, $P = 2^n\cdot 2^{-n}(1-2^{-n})^{2^n-1}$: each of $2^n$ coordinates is
    all-zero over the $n$ examples with probability $2^{-n}$.
    """
    return math.exp((2**n - 1) * math.log1p(-(2.0**-n)))
