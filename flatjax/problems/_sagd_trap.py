"""Theorem 3's construction: SA-GD drifts into a spurious flat minimum."""

from __future__ import annotations

import math

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
from ._kernel import AbstractFusedKernel, KernelMetrics, flat_blocks


class SAGDTrap(AbstractProblem):
    r"""Theorem 3 of arXiv 2511.03548: SA-GD's risk is $\Omega(\eta^2(r-\rho)^2 T)$.

    $\mathcal{Z} = \{-1,1\}^{2^n}$ with i.i.d. Rademacher coordinates. The iterate has
    $2^n$ blocks $w^{(i)}$ of length $T$ plus one always-active coordinate $w(d)$, so
    $d = 2^n T + 1$ (the statement's $d=2^nT$ misses the $+1$; digest §4.3, §8).
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
        """$1-(1-2^{-n})^{2^n}$: some block is $+1$ in every example (digest §7.1)."""
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
        return rejection_sample(self.sample, self.good_event, key)

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
        s = (
            jnp.sum(negative)
            + jnp.square(w[-1])
            + jnp.sum(plus * difference[None, :], axis=1)
        )
        value = jnp.mean(flat_half_square(s, self.rho))
        inside = s > 0
        root = jnp.sqrt(jnp.where(inside, s, 1.0))
        # slope_k = 2 h'(s_k) / n: the factor 2 of d(x^2)/dx is folded in.
        slope = jnp.where(inside, jnp.maximum(root - self.rho, 0.0) / root, 0.0)
        slope = slope / self.n
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
        $F(w) = \frac14[\|w^{(I)}\| - \rho]_+^2$ (digest §4.3).
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

    def adversarial_maximizer(self, S: Array):
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
        self, S: Array, algorithm: str, learning_rate, radius, maximizer=None
    ) -> AbstractFusedKernel | None:
        r"""GD, and SA-GD with ``adversarial_maximizer``, from per-block statistics.

        The state is the $2^n\times T$ block matrix and $w(d)$. A step makes one
        pass over the blocks for the row sums $P_i-N_i$ and $N_i$ (which give
        $F_S(w_t)$, $\|w_t\|$ and $\|\nabla F_S(w_t)\|$ without touching $w$
        again), corrects them at the single coordinate the oracle perturbs (so
        $w_t + v_t$ is never materialized and $F_S^r(w_t) = F_S(w_t + v_t)$ comes
        free), and one elementwise pass writes $w_{t+1}$. Other maximizers (or
        ``"sam"``) return ``None``: ``run_fused`` then uses the generic runner.
        """
        maximizer = getattr(maximizer, "fn", maximizer)  # FunctionMaximizer
        if algorithm == "sa_gd" and not isinstance(maximizer, AdversarialMaximizer):
            return None
        if algorithm not in ("gd", "sa_gd"):
            return None
        S = jnp.asarray(S, self.dtype)
        return _SAGDTrapKernel(
            problem=self,
            plus=0.5 * (S + 1.0),
            index=maximizer.index if algorithm == "sa_gd" else jnp.asarray(0),
            learning_rate=jnp.asarray(learning_rate, self.dtype),
            radius=jnp.asarray(radius, self.dtype),
            adversarial=algorithm == "sa_gd",
        )


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
        free = block >= 0
        in_block = p.T * self.index + jnp.argmax(free)
        position = jnp.where(jnp.any(free), in_block, p.d - 1)
        return radius * jax.nn.one_hot(position, p.d, dtype=w.dtype)


class _SAGDTrapKernel(AbstractFusedKernel):
    r"""GD/SA-GD on ``SAGDTrap``.

    State ``(blocks, last, positive, negative)``: the $(2^n, T)$ blocks, $w(d)$,
    and the row sums $P_i = \|[w^{(i)}]_+\|^2$ and $N_i = \|[w^{(i)}]_-\|^2$,
    computed right after the blocks are written (while they are in cache), so a
    step reads the blocks once. $P_i$ and $N_i$ are summed directly (not as
    differences), so a row of one sign has an exactly zero $P_i$ or $N_i$, and
    $F_S$ and $\|\nabla F_S\|$ are exactly 0 where they should be.
    """

    problem: SAGDTrap
    plus: Float[Array, "n m"]
    index: Int[Array, ""]
    learning_rate: Float[Array, ""]
    radius: Float[Array, ""]
    adversarial: bool = eqx.field(static=True)

    def init(self, w):
        return (self.problem.blocks(w), w[-1], *self.problem._block_parts(w))

    def iterate(self, state):
        return state[:2]

    def flat(self, iterate):
        return flat_blocks(iterate)

    def norm(self, state):
        _, last, positive, negative = state
        return jnp.sqrt(jnp.sum(positive + negative) + jnp.square(last))

    def _slopes(self, positive, negative, last):
        # s_k, F_S and the slopes of SAGDTrap.value_and_grad from P_i and N_i.
        p = self.problem
        s = (
            jnp.sum(negative)
            + jnp.square(last)
            + jnp.sum(self.plus * (positive - negative)[None, :], axis=1)
        )
        value = jnp.mean(flat_half_square(s, p.rho))
        inside = s > 0
        root = jnp.sqrt(jnp.where(inside, s, 1.0))
        slope = jnp.where(inside, jnp.maximum(root - p.rho, 0.0) / root, 0.0) / p.n
        return value, jnp.sum(slope[:, None] * self.plus, axis=0), jnp.sum(slope)

    def step(self, state, scale):
        raw, raw_last, positive, negative = state
        # The statistics of w_t = scale * raw.
        positive, negative = scale**2 * positive, scale**2 * negative
        last = scale * raw_last
        value, seen, total = self._slopes(positive, negative, last)
        grad_norm = jnp.sqrt(
            jnp.sum(jnp.square(seen) * positive + jnp.square(total - seen) * negative)
            + jnp.square(total * last)
        )
        saer = None
        ascended_last = last
        if self.adversarial:
            i = self.index
            row = scale * jax.lax.dynamic_index_in_dim(raw, i, axis=0, keepdims=False)
            free = row >= 0
            in_block = jnp.any(free)
            j = jnp.argmax(free)
            x = row[j]
            up = x + self.radius
            # w_t + v_t differs from w_t in one coordinate: correct row i's sums.
            change = jnp.where(in_block, 1.0, 0.0)
            ascended_last = last + (1.0 - change) * self.radius
            saer, seen, total = self._slopes(
                *_replace_entry(positive, negative, i, x, up, change), ascended_last
            )
        w = scale * raw
        grad = seen[:, None] * jnp.maximum(w, 0.0) + (total - seen)[:, None] * (
            jnp.minimum(w, 0.0)
        )
        blocks = w - self.learning_rate * grad
        # The update multiplies the positive entries of row i by a_i and the
        # negative ones by b_i, so the next P_i and N_i follow from these ones
        # without reading the blocks again (they agree with fresh sums to
        # rounding; one-signed rows stay exactly one-signed).
        a = 1.0 - self.learning_rate * seen
        b = 1.0 - self.learning_rate * (total - seen)
        zero = jnp.zeros_like(a)
        new_positive = jnp.where(a >= 0, jnp.square(a) * positive, zero) + jnp.where(
            b < 0, jnp.square(b) * negative, zero
        )
        new_negative = jnp.where(a < 0, jnp.square(a) * positive, zero) + jnp.where(
            b >= 0, jnp.square(b) * negative, zero
        )
        if self.adversarial:
            corner = seen[i] * jnp.maximum(up, 0.0) + (total - seen[i]) * jnp.minimum(
                up, 0.0
            )
            bulk = blocks[i, j]
            moved = x - self.learning_rate * corner
            blocks = blocks.at[i, j].set(jnp.where(in_block, moved, bulk))
            # The perturbed coordinate got `moved` instead of `bulk`.
            new_positive, new_negative = _replace_entry(
                new_positive, new_negative, i, bulk, moved, change
            )
        new_last = last - self.learning_rate * total * ascended_last
        new = (
            blocks,
            new_last,
            jnp.maximum(new_positive, 0.0),
            jnp.maximum(new_negative, 0.0),
        )
        return new, KernelMetrics(value, grad_norm, saer)


def _replace_entry(positive, negative, row, old, new, weight):
    r"""Row sums $P$, $N$ after one entry of ``row`` goes from ``old`` to ``new``.

    ``weight`` is 1 to apply the change, 0 to leave the sums as they are.
    """
    positive = positive.at[row].add(
        weight * (jnp.square(jnp.maximum(new, 0.0)) - jnp.square(jnp.maximum(old, 0.0)))
    )
    negative = negative.at[row].add(
        weight * (jnp.square(jnp.minimum(new, 0.0)) - jnp.square(jnp.minimum(old, 0.0)))
    )
    return positive, negative
