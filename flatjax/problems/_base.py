"""Shared machinery of the problems: base class, validation, exact expectations."""

from __future__ import annotations

import abc
import itertools
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

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

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray) -> Array:
        r"""Draw a training set $S$ of ``n`` i.i.d. examples from $\mathcal{D}$."""

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
        return jnp.mean(jax.vmap(self.loss, in_axes=(None, 0))(w, S))

    def value_and_grad(
        self, w: Float[Array, " d"], S: Array
    ) -> tuple[Float[Array, ""], Float[Array, " d"]]:
        r"""$F_S(w)$ and $\nabla F_S(w)$ together (what the runner calls every step).

        Defaults to autodiff of ``empirical_risk``; a problem may override it with a
        hand-fused gradient, which tests hold equal to the autodiff of ``loss``.
        """
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
    both the value and the gradient finite there (paper digest §7.6).
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
    support = jnp.sum(weights != 0)
    _, top = jax.lax.top_k(jnp.abs(weights), k)
    active = weights[top]
    patterns = jnp.asarray(_patterns(k, weights.dtype))
    exact_value = jnp.mean(fn(offset + patterns @ active))
    is_exact = support <= k
    zero = jnp.zeros((), weights.dtype)
    if key is None:
        exact_value = eqx.error_if(
            exact_value,
            jnp.logical_not(is_exact),
            f"`{call}`: the iterate has more than {k} active coordinates, so the exact "
            "finite sum is too large; pass `key=` for an unbiased Monte Carlo estimate",
        )
        return RiskEstimate(exact_value, zero, jnp.asarray(True))

    def monte_carlo(_):
        bits = jax.random.bernoulli(key, 0.5, (num_samples, m)).astype(weights.dtype)
        values = fn(offset + bits @ weights)
        return jnp.mean(values), jnp.std(values, ddof=1) / math.sqrt(num_samples)

    value, stderr = jax.lax.cond(
        is_exact, lambda _: (exact_value, zero), monte_carlo, None
    )
    return RiskEstimate(value, stderr, is_exact)


def rejection_sample(sample_fn, event_fn, key: PRNGKeyArray):
    """Draw from ``sample_fn`` conditioned on ``event_fn`` by rejection.

    Rejection sampling gives exactly the conditional distribution. It is a
    ``lax.while_loop``, so it runs under ``jit`` and ``vmap`` (a batch loops until
    every member is accepted). The expected number of draws is 1/P(event).
    """
    first_key, key = jax.random.split(key)
    first = sample_fn(first_key)

    def cond(carry):
        _, S = carry
        return jnp.logical_not(event_fn(S))

    def body(carry):
        key, _ = carry
        key, sub = jax.random.split(key)
        return key, sample_fn(sub)

    _, S = jax.lax.while_loop(cond, body, (key, first))
    return S


def unseen_probability(n: int) -> float:
    r"""$P(\exists I: z(I)=0\ \forall z\in S) = 1-(1-2^{-n})^{2^n}$ (digest §7.1)."""
    return -math.expm1(2**n * math.log1p(-(2.0**-n)))


def exactly_one_unseen_probability(n: int) -> float:
    r"""$P(\text{exactly one } I \text{ unseen}) = (1-2^{-n})^{2^n-1}$ (digest §7.1).

    Exactly, $P = 2^n\cdot 2^{-n}(1-2^{-n})^{2^n-1}$: each of $2^n$ coordinates is
    all-zero over the $n$ examples with probability $2^{-n}$.
    """
    return math.exp((2**n - 1) * math.log1p(-(2.0**-n)))
