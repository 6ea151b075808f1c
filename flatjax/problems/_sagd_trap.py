"""Theorem 3's construction: SA-GD drifts into a spurious flat minimum."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import (
    DEFAULT_MAX_BYTES,
    MAX_EXPONENT,
    check_dtype,
    check_int,
    check_memory,
    check_prng_key,
    check_real,
)
from ._base import (
    AbstractProblem,
    RiskEstimate,
    bernoulli_sum_expectation,
    flat_half_square,
    rejection_sample,
    unseen_probability,
)
from ._erm import _TOO_LARGE, _check_example, _first_index, _unseen_mask
from ._kernel import AbstractFusedKernel, BlockIterate, KernelMetrics, flat_blocks


class SAGDTrap(AbstractProblem):
    r"""Theorem 3 of arXiv 2511.03548: SA-GD's risk is $\Omega(\eta^2(r-\rho)^2 T)$.

    $\mathcal{Z} = \{-1,1\}^{2^n}$ with i.i.d. Rademacher coordinates. The iterate has
    $2^n$ blocks $w^{(i)}$ of length $T$ plus one always-active coordinate $w(d)$, so
    $d = 2^n T + 1$ (the statement's $d=2^nT$ misses the $+1$; see the errata page).
    Block $(i, j)$ (0-based) is flat coordinate $T i + j$; the extra coordinate is
    last. The loss (Appendix B.2) is

    $$f(w,z) = \tfrac12\Big[\sqrt{\textstyle\sum_{i=1}^{2^n}\sum_{j=1}^{T}
    [z(i)\,w^{(i)}(j)]_+^2 + w(d)^2} - \rho\Big]_+^2 ,$$

    convex, 1-smooth, 1-Lipschitz and $\rho$-flat (Lemma 2). With probability
    $1-(1-2^{-n})^{2^n}$ some block $I$ has $z(I)=+1$ in every example (the proof's
    "$S\subseteq\{0,1\}^{2^n}$" is a typo for $\{-1,1\}$). SA-GD from $w_1=0$ with the
    adversarial maximizer ``adversarial_maximizer(S)`` (the oracle $v_t = r\,e_{(I,t)}$)
    moves one fresh coordinate of block $I$ by $-\eta(r-\rho)$ per step: invisible to
    training examples, active for a fresh $z$ with $z(I)=-1$.

    Examples:
        >>> import jax
        >>> problem = SAGDTrap(n=3, T=8, rho=0.1)
        >>> problem.d
        65

    Args:
        n: number of training examples, $n \ge 1$.
        T: number of iterations the construction is built for (block length), $T\ge1$.
        rho: flatness radius $\rho \ge 0$ (may be traced; then unchecked). The lower
            bound needs $\rho < \eta(r-\rho)\sqrt{T}/3$: see ``lower_bound_applies``.
        dtype: floating dtype (float64 needs ``jax_enable_x64``).
        max_support: population risk is an exact sum over the $2^k$ sign patterns of
            the blocks where $w$ has unequal positive and negative parts, when
            $k \le$ ``max_support``; beyond, Monte Carlo.
        max_bytes: refuse sizes whose arrays would exceed this many bytes.
    """

    n: int = eqx.field(static=True)
    T: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)
    max_support: int = eqx.field(static=True)
    rho: Float[Array, ""]

    def __init__(
        self,
        n: int,
        T: int,
        rho=0.0,
        *,
        dtype=jnp.float64,
        max_support: int = 12,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        call = type(self).__name__
        self.n = check_int(call, "n", n, 1, MAX_EXPONENT, _TOO_LARGE)
        self.T = check_int(call, "T", T, 1)
        self.dtype = check_dtype(call, dtype)
        self.max_support = check_int(call, "max_support", max_support, 0)
        d = 2**self.n * self.T + 1
        check_memory(call, (d + self.n * 2**self.n) * self.dtype.itemsize, max_bytes)
        rho = check_real(call, "rho", rho, lower=0.0)
        self.rho = jnp.asarray(rho, self.dtype)

    @property
    def d(self) -> int:
        """$d = 2^n T + 1$."""
        return 2**self.n * self.T + 1

    @property
    def beta(self) -> float:
        """1-smooth (Theorem 3)."""
        return 1.0

    @property
    def lipschitz(self) -> float:
        """1-Lipschitz on the unit ball (Theorem 3)."""
        return 1.0

    @property
    def good_event_probability(self) -> float:
        """$1-(1-2^{-n})^{2^n}$: some block is $+1$ in every example (exact)."""
        return unseen_probability(self.n)

    @property
    def example_shape(self) -> tuple[int, ...]:
        r"""An example is a vector of $\{-1,1\}^{2^n}$: ``(2**n,)``."""
        return (2**self.n,)

    def in_support(self, z: Array) -> Bool[Array, ""]:
        """Every entry of ``z`` is -1 or +1."""
        return jnp.all((z == -1) | (z == 1))

    def blocks(self, w: Float[Array, " d"]) -> Float[Array, "m T"]:
        r"""The $2^n \times T$ block view of $w$ (without the last coordinate)."""
        w = self._check_w(f"{type(self).__name__}.blocks", w)
        return w[:-1].reshape(2**self.n, self.T)

    def sample(self, key: PRNGKeyArray) -> Float[Array, "n m"]:
        r"""``n`` Rademacher examples from $\{-1,1\}^{2^n}$."""
        key = check_prng_key(f"{type(self).__name__}.sample", key)
        return jax.random.rademacher(key, (self.n, 2**self.n), dtype=self.dtype)

    def good_event(self, S: Array) -> Bool[Array, ""]:
        r"""Some block $I$ has $z(I) = +1$ for every $z \in S$."""
        S = self._check_S(f"{type(self).__name__}.good_event", S)
        return jnp.any(_unseen_mask(S, seen_value=-1.0))

    def sample_conditioned(self, key: PRNGKeyArray) -> Float[Array, "n m"]:
        r"""A training set from $\mathcal{D}^n$ given the good event (rejection).

        Acceptance probability ``good_event_probability``.
        """
        key = check_prng_key(f"{type(self).__name__}.sample_conditioned", key)
        return rejection_sample(
            self.sample,
            self.good_event,
            key,
            acceptance_probability=self.good_event_probability,
        )

    def unseen_index(self, S: Array) -> Int[Array, ""]:
        r"""The first block $I$ with $z(I)=+1$ for all $z\in S$ (its $-1$ is unseen)."""
        call = f"{type(self).__name__}.unseen_index"
        S = self._check_S(call, S)
        return _first_index(_unseen_mask(S, seen_value=-1.0), call)

    def loss(self, w: Float[Array, " d"], z: Float[Array, " m"]) -> Float[Array, ""]:
        """$f(w,z)$ of Theorem 3 (readable definition)."""
        call = f"{type(self).__name__}.loss"
        w, z = self._check_w(call, w), _check_example(self, call, z)
        signed = z[:, None] * self.blocks(w)
        s = jnp.sum(jnp.square(jnp.maximum(signed, 0.0))) + jnp.square(w[-1])
        return flat_half_square(s, self.rho)

    def _block_parts(self, w):
        blocks = self.blocks(w)
        positive = jnp.sum(jnp.square(jnp.maximum(blocks, 0.0)), axis=1)
        negative = jnp.sum(jnp.square(jnp.minimum(blocks, 0.0)), axis=1)
        return positive, negative

    def empirical_risk(self, w: Float[Array, " d"], S: Array) -> Float[Array, ""]:
        r"""$F_S(w)$ from per-block sufficient statistics, $O(d + n 2^n)$.

        With $P_i = \|[w^{(i)}]_+\|^2$ and $N_i = \|[w^{(i)}]_-\|^2$, example $k$
        sees $s_k = \sum_i N_i + w(d)^2 + \sum_i \mathbb{1}[z_k(i)=1](P_i - N_i)$.
        """
        call = f"{type(self).__name__}.empirical_risk"
        w, S = self._check_w(call, w), self._check_S(call, S, any_count=True)
        positive, negative = self._block_parts(w)
        plus = 0.5 * (S + 1.0)
        s = jnp.sum(negative) + jnp.square(w[-1]) + plus @ (positive - negative)
        return jnp.mean(flat_half_square(s, self.rho))

    def value_and_grad(
        self, w: Float[Array, " d"], S: Array
    ) -> tuple[Float[Array, ""], Float[Array, " d"]]:
        r"""$F_S(w)$ and $\nabla F_S(w)$ in closed form from per-block statistics.

        The fast path the runner calls every step (Theorem 3 of arXiv 2511.03548,
        Lemma 2). $w$ is viewed as $2^n + 1$ rows of length $T$: the blocks, then
        $w(d)$ followed by zeros (one contiguous copy, so that every later pass
        reads contiguous rows). Row sums give $P_i - N_i$ and $N_i$ (see
        ``empirical_risk``), an $n\times 2^n$ product gives $s_k$, and one
        elementwise pass gives the gradient. With $h(s) = \frac12[\sqrt s-\rho]_+^2$,
        $h'(s) = [\sqrt s-\rho]_+/(2\sqrt s)$ (0 at $s = 0$),
        $a_i = \frac1n\sum_k h'(s_k)\mathbb{1}[z_k(i)=1]$ and
        $c = \frac1n\sum_k h'(s_k)$,

        $$\nabla_{w^{(i)}} F_S = 2a_i[w^{(i)}]_+ + 2(c-a_i)\min(w^{(i)}, 0),\qquad
        \partial_{w(d)} F_S = 2c\,w(d).$$

        Tests hold it equal to autodiff of the vmapped readable ``loss``.

        Args:
            w: the iterate.
            S: the training set, shape ``(n, 2**n)``.

        Returns:
            ``(F_S(w), grad F_S(w))``.
        """
        call = f"{type(self).__name__}.value_and_grad"
        w, S = self._check_w(call, w), self._check_S(call, S)
        m, T = 2**self.n, self.T
        rows = jnp.pad(w, (0, T - 1)).reshape(m + 1, T)
        difference = jnp.sum(rows * jnp.abs(rows), axis=1)[:m]  # P_i - N_i
        negative = jnp.sum(jnp.square(jnp.minimum(rows, 0.0)), axis=1)[:m]  # N_i
        plus = 0.5 * (S + 1.0)
        value, slope = _risk_and_slopes(
            jnp.sum(negative) + jnp.square(w[-1]),
            jnp.sum(plus * difference[None, :], axis=1),
            self.rho,
            self.n,
        )
        seen = jnp.sum(slope[:, None] * plus, axis=0)
        total = jnp.sum(slope)
        # The last row holds w(d): both of its coefficients are c.
        positive_scale = jnp.concatenate([seen, total[None]])
        negative_scale = jnp.concatenate([total - seen, total[None]])
        positive_part = positive_scale[:, None] * jnp.maximum(rows, 0.0)
        negative_part = negative_scale[:, None] * jnp.minimum(rows, 0.0)
        return value, (positive_part + negative_part).reshape(-1)[: self.d]

    def population_risk(
        self,
        w: Float[Array, " d"],
        key: PRNGKeyArray | None = None,
        *,
        num_samples: int = 100_000,
    ) -> RiskEstimate:
        r"""$F(w)$: exact when at most ``max_support`` blocks have $P_i \ne N_i$.

        Each block contributes $P_i$ or $N_i$ with probability 1/2, so $F$ is an
        exact finite sum over the sign patterns of the blocks where they differ.
        Along SA-GD's trajectory only block $I$ is non-zero, and then
        $F(w) = \frac14[\|w^{(I)}\| - \rho]_+^2$ (Theorem 3, Appendix B.2).
        """
        call = f"{type(self).__name__}.population_risk"
        w = self._check_population(call, w, key, num_samples)
        positive, negative = self._block_parts(w)
        return bernoulli_sum_expectation(
            lambda s: flat_half_square(s, self.rho),
            jnp.sum(negative) + jnp.square(w[-1]),
            positive - negative,
            max_support=self.max_support,
            key=key,
            num_samples=num_samples,
            call=f"{type(self).__name__}.population_risk",
        )

    def saer_minimizer(self, S: Array, radius) -> tuple[Array, Array]:
        r"""A SAER minimizer, $w = 0$, with $F_S^r(0) = \frac12[r-\rho]_+^2$.

        Perturbing the always-active last coordinate shows
        $F_S^r(w) \ge \frac12[r-\rho]_+^2$ for every $w$; at 0 every $\|v\|\le r$
        gives $s\le\|v\|^2$, so 0 attains it (as do SA-GD's suffix averages).
        """
        call = f"{type(self).__name__}.saer_minimizer"
        radius = check_real(call, "radius", radius, lower=0.0)
        self._check_S(call, S)
        value = 0.5 * jnp.square(jnp.maximum(radius - self.rho, 0.0))
        return self.initial_point(), value

    def lower_bound_applies(self, learning_rate: float, radius: float) -> bool:
        r"""Whether Theorem 3's hypotheses hold for these $\eta$ and $r$.

        They are $\rho < r(1-\frac{3}{3+\eta\sqrt T})$ and
        $\eta(r-\rho)\le\frac1{\sqrt T}$.

        Args:
            learning_rate: $\eta > 0$.
            radius: the SA-GD perturbation radius $r \ge 0$.
        """
        rho = float(self.rho)
        root = math.sqrt(self.T)
        threshold = radius * (1.0 - 3.0 / (3.0 + learning_rate * root))
        return rho < threshold and learning_rate * (radius - rho) <= 1.0 / root + 1e-15

    def adversarial_maximizer(self, S: Array) -> AdversarialMaximizer:
        r"""The paper's tie-breaking oracle $v_t = r\, e_{(I,t)}$ (Appendix B.2).

        The inner maximum $\max_{\|v\|\le r} F_S(w_t + v) = \frac12(r-\rho)^2$ is
        attained by many $v$; Theorem 3 is existential over that choice and needs
        this one (any unit direction on the always-active set also ties, e.g.
        $\pm r e_d$, and those do not reproduce the theorem: see
        ``extra_coordinate_maximizer``). This version needs no step counter: it
        returns $r\,e_{(I,j)}$ for the first $j$ with $w^{(I)}(j) \ge 0$, which along
        the paper's trajectory from $w_1 = 0$ is exactly $j = t$ (coordinates
        $1..t-1$ of block $I$ are negative, the rest zero); once the block is
        exhausted it returns $r e_d$, also a maximizer there. It is an exact
        maximizer at every point of that trajectory, not at arbitrary $w$.

        Args:
            S: the training set; it must satisfy the good event.

        Returns:
            An ``AdversarialMaximizer``, called as ``(w, radius) -> v``; SA-GD's
            fused kernel recognizes it (``fused_kernel``).
        """
        return AdversarialMaximizer(self, self.unseen_index(S))

    def extra_coordinate_maximizer(self):
        r"""A non-adversarial tie-break, $v = r\,\mathrm{sign}(w(d))\,e_d$, sign(0) = 1.

        Exact wherever only the last coordinate of $w$ is non-zero, which is where
        SA-GD from $w_1 = 0$ stays with this choice: then every $\|v\|\le r$ gives
        $F_S(w+v)\le \frac12[|w(d)|+r-\rho]_+^2$, attained here. With it SA-GD never
        touches block $I$ and its population risk equals its empirical risk: the
        tie-break is what makes Theorem 3 happen.

        Returns:
            A maximizer ``(w, radius) -> v``.
        """

        def maximizer(w: Float[Array, " d"], radius) -> Float[Array, " d"]:
            sign = jnp.where(w[-1] < 0, -1.0, 1.0).astype(w.dtype)
            return jnp.zeros_like(w).at[-1].set(sign * radius)

        return maximizer

    def fused_kernel(
        self,
        S: Array,
        algorithm: str,
        learning_rate,
        radius,
        maximizer: Callable[[Array, Any], Array] | None = None,
        *,
        zero_start: bool = False,
    ) -> AbstractFusedKernel | None:
        r"""GD, and SA-GD with ``adversarial_maximizer``, from per-block statistics.

        From $w_1 = 0$ (``zero_start``) the kernel is *compressed*: every update
        multiplies the positive entries of a block by one factor and its negative
        entries by another, so a block that is 0 stays 0, and the oracle only ever
        changes block $I$ and $w(d)$. The state is then block $I$, $w(d)$ and
        $P_I$, $N_I$ (``CompressedSAGDTrapState``): a step costs $O(T + n)$
        instead of $O(2^nT)$, suffix sums are sums of block $I$, and every metric
        of ``run`` (population risk included, exact: only block $I$ can have
        $P_i \ne N_i$) comes from it; the flat $d$-vector is built only where a
        result asks for it (``flat``). Sizes whose flat iterate would not fit in
        memory run this way.

        From any other start the kernel is *dense* (``SAGDTrapState``): the
        $2^n\times T$ block matrix and $w(d)$ with the row sums $P_i$, $N_i$. A
        step makes one pass over the blocks for $P_i-N_i$ and $N_i$ (which give
        $F_S(w_t)$, $\|w_t\|$ and $\|\nabla F_S(w_t)\|$ without touching $w$
        again), corrects them at the single coordinate the oracle perturbs (so
        $w_t + v_t$ is never materialized and $F_S^r(w_t) = F_S(w_t + v_t)$ comes
        free), and one elementwise pass writes $w_{t+1}$.

        Both follow Theorem 3's dynamics exactly, including steps with
        $\eta\,\partial > 1$ that flip the signs of a block's entries. Other
        maximizers (or ``"sam"``) return ``None``: ``run_fused`` then uses the
        generic runner.

        Args:
            S: the training set.
            algorithm: ``"gd"`` or ``"sa_gd"`` (else ``None``).
            learning_rate: $\eta$ (may be traced).
            radius: $r$ (may be traced).
            maximizer: ``adversarial_maximizer(S)`` for ``"sa_gd"`` (an
                ``AdversarialMaximizer``; ``run_fused`` unwraps a
                ``FunctionMaximizer`` around it); any other returns ``None``.
            zero_start: the run starts at $w_1 = 0$ (``run_fused`` passes it when
                no ``w1`` is given).
        """
        if algorithm == "gd":
            adversarial, index = False, jnp.asarray(0)
        elif algorithm == "sa_gd" and isinstance(maximizer, AdversarialMaximizer):
            adversarial, index = True, maximizer.index
        else:
            return None
        S = jnp.asarray(S, self.dtype)
        plus = 0.5 * (S + 1.0)
        learning_rate = jnp.asarray(learning_rate, self.dtype)
        radius = jnp.asarray(radius, self.dtype)
        # The compressed population risk sums over block I's two sign patterns
        # (needs max_support >= 1, as population_risk's exact branch does).
        if zero_start and self.max_support >= 1:
            return _CompressedSAGDTrapKernel(
                problem=self,
                plus=jnp.take(plus, index, axis=1),
                index=index,
                learning_rate=learning_rate,
                radius=radius,
                adversarial=adversarial,
            )
        return _SAGDTrapKernel(
            problem=self,
            plus=plus,
            index=index,
            learning_rate=learning_rate,
            radius=radius,
            adversarial=adversarial,
        )


def _risk_and_slopes(base, spread, rho, n):
    r"""$F_S$ and the slopes $2h'(s_k)/n$ from $s_k = $ ``base + spread[k]``.

    The one copy of Theorem 3's per-example formulas (Lemma 2), shared by
    ``SAGDTrap.value_and_grad`` and both kernels: $s_k = \sum_i N_i + w(d)^2 +
    \sum_i \mathbb{1}[z_k(i)=1](P_i-N_i)$, $h(s) = \frac12[\sqrt s-\rho]_+^2$,
    $2h'(s) = [\sqrt s-\rho]_+/\sqrt s$ (0 at $s = 0$). The gradient is then
    $2a_i[w^{(i)}]_+ + 2(c-a_i)\min(w^{(i)},0)$ on block $i$ and $2c\,w(d)$,
    with $2a_i = \sum_k$ slope$_k\mathbb{1}[z_k(i)=1]$ and $2c = \sum_k$ slope$_k$.
    """
    s = base + spread
    value = jnp.mean(flat_half_square(s, rho))
    inside = s > 0
    root = jnp.sqrt(jnp.where(inside, s, 1.0))
    slope = jnp.where(inside, jnp.maximum(root - rho, 0.0) / root, 0.0)
    return value, slope / n


def _oracle_position(row):
    r"""The oracle on block $I$: (some $w^{(I)}(j)\ge0$?, first such $j$, $w^{(I)}(j)$).

    The first such $j$ (``argmax`` of the first true), the tie-break of
    ``SAGDTrap.adversarial_maximizer``; without one the oracle perturbs $w(d)$
    (``argmax`` is then 0 and $w^{(I)}(0) < 0$ says so).
    """
    size = row.shape[-1]
    # min over a masked iota: a plain reduction, which XLA vectorizes (an argmax
    # is a pair reduction, about twice as slow on a CPU).
    j = jnp.min(jnp.where(row >= 0, jnp.arange(size, dtype=jnp.int32), size), axis=-1)
    j = jnp.minimum(j, size - 1)  # none free: the last entry, which is < 0
    x = jnp.take_along_axis(row, j[..., None], axis=-1)[..., 0]
    return x >= 0, j, x


def _row_parts(row):
    r"""$P = \|[x]_+\|^2$ and $N = \|[x]_-\|^2$ of the last axis of ``row``."""
    positive = jnp.sum(jnp.square(jnp.maximum(row, 0.0)), axis=-1)
    negative = jnp.sum(jnp.square(jnp.minimum(row, 0.0)), axis=-1)
    return positive, negative


def _rescaled_parts(positive, negative, a, b):
    r"""$P$, $N$ of a row after its positive entries are multiplied by ``a`` and
    its negative ones by ``b`` (a negative factor moves a part to the other sign).
    """  # noqa: D205
    zero = jnp.zeros_like(a)
    new_positive = jnp.where(a >= 0, jnp.square(a) * positive, zero) + jnp.where(
        b < 0, jnp.square(b) * negative, zero
    )
    new_negative = jnp.where(a < 0, jnp.square(a) * positive, zero) + jnp.where(
        b >= 0, jnp.square(b) * negative, zero
    )
    return new_positive, new_negative


def _entry_change(old, new, weight):
    """The changes of $P$ and $N$ when one entry goes from ``old`` to ``new``."""
    positive = weight * (
        jnp.square(jnp.maximum(new, 0.0)) - jnp.square(jnp.maximum(old, 0.0))
    )
    negative = weight * (
        jnp.square(jnp.minimum(new, 0.0)) - jnp.square(jnp.minimum(old, 0.0))
    )
    return positive, negative


class AdversarialMaximizer(eqx.Module):
    r"""The oracle $v = r\,e_{(I,j)}$ of ``SAGDTrap.adversarial_maximizer``.

    $j$ is the first coordinate of block $I$ with $w^{(I)}(j)\ge0$; $v = r e_d$
    once there is none.

    Attributes:
        problem: the ``SAGDTrap`` instance.
        index: the block $I$ whose $-1$ no training example shows (0-based).
    """

    problem: SAGDTrap
    index: Int[Array, ""]

    def __call__(self, w: Float[Array, " d"], radius) -> Float[Array, " d"]:
        """The perturbation $v$ at ``w``, of norm ``radius``."""
        p = self.problem
        block = jax.lax.dynamic_index_in_dim(
            p.blocks(w), self.index, axis=0, keepdims=False
        )
        in_block, j, _ = _oracle_position(block)
        position = jnp.where(in_block, p.T * self.index + j, p.d - 1)
        return radius * jax.nn.one_hot(position, p.d, dtype=w.dtype)


class SAGDTrapState(NamedTuple):
    r"""The dense kernel's state: the iterate in blocks and its per-block sums.

    Attributes:
        blocks: the $2^n\times T$ blocks.
        last: $w(d)$.
        positive: $P_i = \|[w^{(i)}]_+\|^2$, shape $(2^n,)$.
        negative: $N_i = \|[w^{(i)}]_-\|^2$, shape $(2^n,)$.
    """

    blocks: Float[Array, "m T"]
    last: Float[Array, ""]
    positive: Float[Array, " m"]
    negative: Float[Array, " m"]


class _SAGDTrapKernel(AbstractFusedKernel):
    r"""GD/SA-GD on ``SAGDTrap`` from any start, on the whole block matrix.

    $P_i$ and $N_i$ are carried, updated from the rows' multipliers right after
    the blocks are written, so a step reads the blocks once. They are summed
    directly (not as differences), so a row of one sign has an exactly zero $P_i$
    or $N_i$, and $F_S$ and $\|\nabla F_S\|$ are exactly 0 where they should be.
    """

    problem: SAGDTrap
    plus: Float[Array, "n m"]
    index: Int[Array, ""]
    learning_rate: Float[Array, ""]
    radius: Float[Array, ""]
    adversarial: bool = eqx.field(static=True)

    def init(self, w):
        return SAGDTrapState(
            self.problem.blocks(w), w[-1], *self.problem._block_parts(w)
        )

    def iterate(self, state):
        return BlockIterate(state.blocks, state.last)

    def flat(self, iterate):
        return flat_blocks(iterate)

    def norm(self, state):
        return jnp.sqrt(
            jnp.sum(state.positive + state.negative) + jnp.square(state.last)
        )

    def _slopes(self, positive, negative, last):
        p = self.problem
        value, slope = _risk_and_slopes(
            jnp.sum(negative) + jnp.square(last),
            jnp.sum(self.plus * (positive - negative)[None, :], axis=1),
            p.rho,
            p.n,
        )
        return value, jnp.sum(slope[:, None] * self.plus, axis=0), jnp.sum(slope)

    def step(self, state, scale):
        # The statistics of w_t = scale * raw.
        positive, negative = scale**2 * state.positive, scale**2 * state.negative
        last = scale * state.last
        value, seen, total = self._slopes(positive, negative, last)
        grad_norm = jnp.sqrt(
            jnp.sum(jnp.square(seen) * positive + jnp.square(total - seen) * negative)
            + jnp.square(total * last)
        )
        saer = None
        ascended_last = last
        if self.adversarial:
            i = self.index
            row = scale * jax.lax.dynamic_index_in_dim(
                state.blocks, i, axis=0, keepdims=False
            )
            in_block, j, x = _oracle_position(row)
            up = x + self.radius
            # w_t + v_t differs from w_t in one coordinate: correct row i's sums.
            change = jnp.where(in_block, 1.0, 0.0)
            ascended_last = last + (1.0 - change) * self.radius
            dp, dn = _entry_change(x, up, change)
            saer, seen, total = self._slopes(
                positive.at[i].add(dp), negative.at[i].add(dn), ascended_last
            )
        w = scale * state.blocks
        grad = seen[:, None] * jnp.maximum(w, 0.0) + (total - seen)[:, None] * (
            jnp.minimum(w, 0.0)
        )
        blocks = w - self.learning_rate * grad
        # The update multiplies the positive entries of row i by a_i and the
        # negative ones by b_i, so the next P_i and N_i follow from these ones
        # without reading the blocks again (they agree with fresh sums to
        # rounding; one-signed rows stay exactly one-signed).
        new_positive, new_negative = _rescaled_parts(
            positive,
            negative,
            1.0 - self.learning_rate * seen,
            1.0 - self.learning_rate * (total - seen),
        )
        if self.adversarial:
            corner = seen[i] * jnp.maximum(up, 0.0) + (total - seen[i]) * jnp.minimum(
                up, 0.0
            )
            bulk = blocks[i, j]
            moved = x - self.learning_rate * corner
            blocks = blocks.at[i, j].set(jnp.where(in_block, moved, bulk))
            # The perturbed coordinate got `moved` instead of `bulk`.
            dp, dn = _entry_change(bulk, moved, change)
            new_positive = new_positive.at[i].add(dp)
            new_negative = new_negative.at[i].add(dn)
        new = SAGDTrapState(
            blocks,
            last - self.learning_rate * total * ascended_last,
            jnp.maximum(new_positive, 0.0),
            jnp.maximum(new_negative, 0.0),
        )
        return new, KernelMetrics(value, grad_norm, saer)


class CompressedSAGDTrapState(NamedTuple):
    r"""The compressed kernel's state: block $I$, $w(d)$ and $P_I$, $N_I$.

    Every other block of the iterate is 0 (see ``SAGDTrap.fused_kernel``).

    Attributes:
        row: block $I$, shape $(T,)$.
        last: $w(d)$.
        positive: $P_I = \|[w^{(I)}]_+\|^2$.
        negative: $N_I = \|[w^{(I)}]_-\|^2$.
    """

    row: Float[Array, " T"]
    last: Float[Array, ""]
    positive: Float[Array, ""]
    negative: Float[Array, ""]


class RowIterate(NamedTuple):
    r"""An iterate of the compressed kernel: block $I$ and $w(d)$, the rest 0.

    Attributes:
        row: block $I$.
        last: $w(d)$.
    """

    row: Float[Array, " T"]
    last: Float[Array, ""]


class _CompressedSAGDTrapKernel(AbstractFusedKernel):
    r"""GD/SA-GD on ``SAGDTrap`` from $w_1 = 0$: only block $I$ and $w(d)$ move.

    The dense kernel's arithmetic restricted to block $I$ (``plus`` is column $I$
    of $\frac12(S+1)$): with every other block 0, $\sum_i N_i = N_I$ and
    $\sum_i \mathbb{1}[z_k(i)=1](P_i - N_i) = \mathbb{1}[z_k(I)=1](P_I - N_I)$
    exactly, the other blocks' updates multiply 0, and the oracle perturbs block
    $I$ or $w(d)$ only. For GD (``adversarial`` false) every block stays 0 and
    the row is block 0's.
    """

    # Its steps are a few passes over T entries: unrolling gains nothing measurable
    # (2-core CPU) and doubles the compile time.
    unroll: ClassVar[int] = 1
    problem: SAGDTrap
    plus: Float[Array, " n"]
    index: Int[Array, ""]
    learning_rate: Float[Array, ""]
    radius: Float[Array, ""]
    adversarial: bool = eqx.field(static=True)

    def init(self, w):
        """The state of ``w``, which must be 0 outside block $I$ and $w(d)$."""
        row = jax.lax.dynamic_index_in_dim(
            self.problem.blocks(w), self.index, axis=0, keepdims=False
        )
        return CompressedSAGDTrapState(row, w[-1], *_row_parts(row))

    def iterate(self, state):
        return RowIterate(state.row, state.last)

    def flat(self, iterate):
        p = self.problem
        blocks = jnp.zeros((2**p.n, p.T), iterate.row.dtype)
        blocks = jax.lax.dynamic_update_index_in_dim(
            blocks, iterate.row, self.index, axis=0
        )
        return flat_blocks(BlockIterate(blocks, iterate.last))

    def norm(self, state):
        return jnp.sqrt(state.positive + state.negative + jnp.square(state.last))

    def _slopes(self, positive, negative, last):
        p = self.problem
        value, slope = _risk_and_slopes(
            negative + jnp.square(last), self.plus * (positive - negative), p.rho, p.n
        )
        return value, jnp.sum(slope * self.plus), jnp.sum(slope)

    def _ascent(self, row, positive, negative, last):
        """The oracle at (row, last): F_S(w + v), 2a_I, 2c, and where v went."""
        in_block, j, x = _oracle_position(row)
        up = x + self.radius
        change = jnp.where(in_block, 1.0, 0.0)
        ascended_last = last + (1.0 - change) * self.radius
        dp, dn = _entry_change(x, up, change)
        saer, seen, total = self._slopes(positive + dp, negative + dn, ascended_last)
        return saer, seen, total, (in_block, j, x, up, change, ascended_last)

    def step(self, state, scale):
        positive, negative = scale**2 * state.positive, scale**2 * state.negative
        last = scale * state.last
        row = scale * state.row
        value, seen, total = self._slopes(positive, negative, last)
        grad_norm = jnp.sqrt(
            jnp.square(seen) * positive
            + jnp.square(total - seen) * negative
            + jnp.square(total * last)
        )
        saer = None
        ascended_last = last
        if self.adversarial:
            saer, seen, total, where = self._ascent(row, positive, negative, last)
            in_block, j, x, up, change, ascended_last = where
        new_row = row - self.learning_rate * (
            seen * jnp.maximum(row, 0.0) + (total - seen) * jnp.minimum(row, 0.0)
        )
        new_positive, new_negative = _rescaled_parts(
            positive,
            negative,
            1.0 - self.learning_rate * seen,
            1.0 - self.learning_rate * (total - seen),
        )
        if self.adversarial:
            corner = seen * jnp.maximum(up, 0.0) + (total - seen) * jnp.minimum(up, 0.0)
            moved = x - self.learning_rate * corner
            # The update's value at j, from x (no read of the new row), and the
            # oracle's instead: one elementwise pass, no scatter.
            bulk = x - self.learning_rate * (
                seen * jnp.maximum(x, 0.0) + (total - seen) * jnp.minimum(x, 0.0)
            )
            at_j = (jnp.arange(row.shape[-1]) == j) & in_block
            new_row = jnp.where(at_j, moved, new_row)
            dp, dn = _entry_change(bulk, moved, change)
            new_positive, new_negative = new_positive + dp, new_negative + dn
        new = CompressedSAGDTrapState(
            new_row,
            last - self.learning_rate * total * ascended_last,
            jnp.maximum(new_positive, 0.0),
            jnp.maximum(new_negative, 0.0),
        )
        return new, KernelMetrics(value, grad_norm, saer)

    def observe(self, iterate, *, population, saer):
        p = self.problem
        row, last = iterate
        positive, negative = _row_parts(row)
        value, _, _ = self._slopes(positive, negative, last)
        metrics = {
            "empirical_risk": value,
            "iterate_norm": jnp.sqrt(positive + negative + jnp.square(last)),
        }
        if population:
            # F(w) = E h(sum_i N_i + w(d)^2 + sum_i b_i (P_i - N_i)), b_i fair
            # coins: only b_I matters (population_risk's exact finite sum).
            offset = negative + jnp.square(last)
            values = flat_half_square(
                offset + jnp.stack([jnp.zeros_like(positive), positive - negative]),
                p.rho,
            )
            metrics["population_risk"] = jnp.mean(values)
            metrics["population_exact"] = jnp.asarray(True)
        if saer:
            metrics["saer"] = self._ascent(row, positive, negative, last)[0]
        return metrics
