"""Theorem 1's flat-ERM construction and the classical ERM construction it builds on."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._checks import (
    DEFAULT_MAX_BYTES,
    MAX_EXPONENT,
    check_array,
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

_TOO_LARGE = " (the construction has 2**n coordinates)"


def _check_exponent(call: str, n) -> int:
    """``n`` of a construction with $2^n$ coordinates: an int in [1, 48]."""
    return check_int(call, "n", n, 1, MAX_EXPONENT, _TOO_LARGE)


def _sample_bits(key: PRNGKeyArray, n: int, m: int, dtype) -> Array:
    r"""``n`` i.i.d. uniform examples from $\{0,1\}^m$."""
    return jax.random.bernoulli(key, 0.5, (n, m)).astype(dtype)


def _is_bits(z: Array) -> Bool[Array, ""]:
    r"""Whether every entry of ``z`` is 0 or 1."""
    return jnp.all((z == 0) | (z == 1))


def _check_example(problem, call: str, z) -> Array:
    """One example ``z`` of shape ``problem.example_shape``, or raise."""
    return check_array(
        call, "z", z, shape=problem.example_shape, expected="(problem.example_shape)"
    )


def _unseen_mask(S: Array, seen_value: float = 1.0) -> Bool[Array, " m"]:
    r"""Coordinates $i$ with $z(i) \neq$ ``seen_value`` for every example in ``S``."""
    return jnp.all(S != seen_value, axis=0)


def _first_index(mask: Bool[Array, " m"], call: str) -> Int[Array, ""]:
    """The first true index of ``mask``; a runtime error when there is none."""
    index = jnp.argmax(mask)
    return eqx.error_if(
        index,
        jnp.logical_not(jnp.any(mask)),
        f"`{call}`: the training set misses the theorem's good event (no unseen "
        "coordinate); draw it with `sample_conditioned`",
    )


class FlatERM(AbstractProblem):
    r"""Theorem 1 of arXiv 2511.03548: a flat bad ERM beside a sharp good ERM.

    $d = 2^n + 1$, $\mathcal{Z} = \{0,1\}^{2^n}$ with $\mathcal{D}$ uniform, and

    $$f(w,z) = \tfrac12\Big[\sqrt{\textstyle\sum_{i=1}^{2^n} z(i)w(i)^2 + w(d)^2}
    - \rho\Big]_+^2 ,$$

    convex, 1-Lipschitz and 1-smooth on the unit ball, and $\rho$-flat (paper §3,
    Appendix A). The last coordinate is always active. With probability
    $1-(1-2^{-n})^{2^n} > 1/2$ some coordinate $I$ is 0 in every example; then
    ``flat_erm(S)`` $= e_I$ minimizes the SAER for every radius and has
    $F(e_I) = \frac14(1-\rho)^2$, while ``sharp_erm()`` $= \rho e_d$ has zero
    population risk and is maximally sharp. The proof's last line prints
    $F(\rho e_I)$; the point meant is $\rho e_d$ (see the errata page).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> problem = FlatERM(n=4, rho=0.0)
        >>> S = problem.sample_conditioned(jax.random.key(0))
        >>> w1 = problem.flat_erm(S)
        >>> risk = problem.population_risk(w1)
        >>> float(problem.empirical_risk(w1, S)), float(risk.value)
        (0.0, 0.25)

    Args:
        n: number of training examples, $n \ge 1$.
        rho: flatness radius $\rho$; the theorem needs $0 \le \rho \le 1/2$. May be a
            traced array (then unchecked).
        dtype: floating dtype (float64 needs ``jax_enable_x64``).
        check_theorem: when false, allow any $\rho \ge 0$ (e.g. the control $\rho=1$).
        max_support: population risk is an exact sum over $2^k$ patterns when at most
            this many coordinates of $w$ are non-zero; beyond, Monte Carlo.
        max_bytes: refuse sizes whose arrays would exceed this many bytes.
    """

    n: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)
    max_support: int = eqx.field(static=True)
    rho: Float[Array, ""]

    def __init__(
        self,
        n: int,
        rho=0.0,
        *,
        dtype=jnp.float64,
        check_theorem: bool = True,
        max_support: int = 12,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        call = type(self).__name__
        self.n = _check_exponent(call, n)
        self.dtype = check_dtype(call, dtype)
        self.max_support = check_int(call, "max_support", max_support, 0)
        check_memory(
            call, (2**self.n + 1) * (self.n + 1) * self.dtype.itemsize, max_bytes
        )
        upper = 0.5 if check_theorem else None
        rho = check_real(call, "rho", rho, lower=0.0, upper=upper)
        self.rho = jnp.asarray(rho).astype(self.dtype)

    @property
    def d(self) -> int:
        """$d = 2^n + 1$."""
        return 2**self.n + 1

    @property
    def beta(self) -> float:
        """1-smooth (Theorem 1)."""
        return 1.0

    @property
    def lipschitz(self) -> float:
        """1-Lipschitz on the unit ball (Theorem 1)."""
        return 1.0

    @property
    def good_event_probability(self) -> float:
        """$1-(1-2^{-n})^{2^n}$: some coordinate is unseen (exact)."""
        return unseen_probability(self.n)

    @property
    def example_shape(self) -> tuple[int, ...]:
        r"""An example is a vector of $\{0,1\}^{2^n}$: ``(2**n,)``."""
        return (2**self.n,)

    def in_support(self, z: Array) -> Bool[Array, ""]:
        """Every entry of ``z`` is 0 or 1."""
        return _is_bits(z)

    def sample(self, key: PRNGKeyArray) -> Float[Array, "n m"]:
        r"""``n`` uniform examples from $\{0,1\}^{2^n}$, shape ``(n, 2**n)``."""
        key = check_prng_key(f"{type(self).__name__}.sample", key)
        return _sample_bits(key, self.n, 2**self.n, self.dtype)

    def good_event(self, S: Array) -> Bool[Array, ""]:
        r"""Some coordinate $I$ has $z(I)=0$ for every $z \in S$."""
        S = self._check_S(f"{type(self).__name__}.good_event", S)
        return jnp.any(_unseen_mask(S))

    def sample_conditioned(self, key: PRNGKeyArray) -> Float[Array, "n m"]:
        r"""A training set drawn exactly from $\mathcal{D}^n$ given the good event.

        Rejection sampling; acceptance probability ``good_event_probability``.
        """
        key = check_prng_key(f"{type(self).__name__}.sample_conditioned", key)
        return rejection_sample(
            self.sample,
            self.good_event,
            key,
            acceptance_probability=self.good_event_probability,
        )

    def unseen_index(self, S: Array) -> Int[Array, ""]:
        r"""The first coordinate $I$ with $z(I)=0$ for all $z\in S$ (0-based)."""
        call = f"{type(self).__name__}.unseen_index"
        return _first_index(_unseen_mask(self._check_S(call, S)), call)

    def loss(self, w: Float[Array, " d"], z: Float[Array, " m"]) -> Float[Array, ""]:
        """$f(w,z)$ of Theorem 1 (readable definition)."""
        call = f"{type(self).__name__}.loss"
        w, z = self._check_w(call, w), _check_example(self, call, z)
        s = jnp.sum(z * jnp.square(w[:-1])) + jnp.square(w[-1])
        return flat_half_square(s, self.rho)

    def empirical_risk(self, w: Float[Array, " d"], S: Array) -> Float[Array, ""]:
        r"""$F_S(w)$ by one matrix-vector product: $s_k = z_k^\top w^2 + w_d^2$."""
        call = f"{type(self).__name__}.empirical_risk"
        w, S = self._check_w(call, w), self._check_S(call, S, any_count=True)
        s = S @ jnp.square(w[:-1]) + jnp.square(w[-1])
        return jnp.mean(flat_half_square(s, self.rho))

    def population_risk(
        self,
        w: Float[Array, " d"],
        key: PRNGKeyArray | None = None,
        *,
        num_samples: int = 100_000,
    ) -> RiskEstimate:
        """$F(w)$: exact when at most ``max_support`` of $w_1..w_{2^n}$ are non-zero.

        $f$ depends on $z$ only through the coordinates where $w$ is non-zero, so the
        expectation is an exact sum over their $2^k$ sign patterns. With a larger
        support it is a Monte Carlo estimate (needs ``key``).
        """
        call = f"{type(self).__name__}.population_risk"
        w = self._check_population(call, w, key, num_samples)
        return bernoulli_sum_expectation(
            lambda s: flat_half_square(s, self.rho),
            jnp.square(w[-1]),
            jnp.square(w[:-1]),
            max_support=self.max_support,
            key=key,
            num_samples=num_samples,
            call=f"{type(self).__name__}.population_risk",
        )

    def flat_erm(self, S: Array) -> Float[Array, " d"]:
        r"""$w^{(1)} = e_I$: flat, minimizes every SAER, $F = \frac14(1-\rho)^2$."""
        return jax.nn.one_hot(self.unseen_index(S), self.d, dtype=self.dtype)

    def saer_minimizer(self, S: Array, radius) -> tuple[Array, Array]:
        r"""The paper's SA-ERM output $e_I$, with $F_S^r(e_I) = \frac12[r-\rho]_+^2$.

        Every $w$ has $F_S^r(w)\ge\frac12[r-\rho]_+^2$ (perturb the always-active
        last coordinate), and $e_I$ attains it (proof of Theorem 1, Appendix A).
        """
        radius = check_real(
            f"{type(self).__name__}.saer_minimizer", "radius", radius, lower=0.0
        )
        value = 0.5 * jnp.square(jnp.maximum(radius - self.rho, 0.0))
        return self.flat_erm(S), value

    def sharp_erm(self) -> Float[Array, " d"]:
        r"""$w^{(2)} = \rho e_d$: an ERM with zero population risk, maximally sharp."""
        return jnp.zeros((self.d,), self.dtype).at[-1].set(self.rho)

    def population_minimizer(self) -> Float[Array, " d"]:
        r"""$w^\star = 0$, with $F(w^\star) = 0$."""
        return jnp.zeros((self.d,), self.dtype)


class ClassicERM(AbstractProblem):
    r"""The classical ERM lower bound (Shalev-Shwartz et al. 2010; Feldman 2016).

    $d = 2^n$, $\mathcal{Z}=\{0,1\}^{d}$ uniform, $g(w,z) = \frac12\sum_i z(i)w(i)^2$
    (Theorem 1, Appendix A). Some coordinate $I$ is zero in every example with
    probability $1-(1-2^{-n})^{2^n}$; then $e_I$ is an ERM with population risk
    $\frac14$ while $w=0$ has risk 0. Population risk is the closed form
    $\frac14\|w\|^2$.

    Args:
        n: number of training examples, $n \ge 1$.
        dtype: floating dtype (float64 needs ``jax_enable_x64``).
        max_bytes: refuse sizes whose arrays would exceed this many bytes.
    """

    n: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)

    def __init__(
        self, n: int, *, dtype=jnp.float64, max_bytes: int = DEFAULT_MAX_BYTES
    ):
        call = type(self).__name__
        self.n = _check_exponent(call, n)
        self.dtype = check_dtype(call, dtype)
        check_memory(call, 2**self.n * (self.n + 1) * self.dtype.itemsize, max_bytes)

    @property
    def d(self) -> int:
        """$d = 2^n$."""
        return 2**self.n

    @property
    def beta(self) -> float:
        """1-smooth."""
        return 1.0

    @property
    def lipschitz(self) -> float:
        """1-Lipschitz on the unit ball."""
        return 1.0

    @property
    def good_event_probability(self) -> float:
        """$1-(1-2^{-n})^{2^n}$: some coordinate is unseen."""
        return unseen_probability(self.n)

    @property
    def example_shape(self) -> tuple[int, ...]:
        r"""An example is a vector of $\{0,1\}^{2^n}$: ``(2**n,)``."""
        return (2**self.n,)

    def in_support(self, z: Array) -> Bool[Array, ""]:
        """Every entry of ``z`` is 0 or 1."""
        return _is_bits(z)

    def sample(self, key: PRNGKeyArray) -> Float[Array, "n d"]:
        r"""``n`` uniform examples from $\{0,1\}^{2^n}$."""
        key = check_prng_key(f"{type(self).__name__}.sample", key)
        return _sample_bits(key, self.n, self.d, self.dtype)

    def good_event(self, S: Array) -> Bool[Array, ""]:
        """Some coordinate is 0 in every example."""
        S = self._check_S(f"{type(self).__name__}.good_event", S)
        return jnp.any(_unseen_mask(S))

    def sample_conditioned(self, key: PRNGKeyArray) -> Float[Array, "n d"]:
        r"""A training set from $\mathcal{D}^n$ given the good event (rejection)."""
        key = check_prng_key(f"{type(self).__name__}.sample_conditioned", key)
        return rejection_sample(
            self.sample,
            self.good_event,
            key,
            acceptance_probability=self.good_event_probability,
        )

    def unseen_index(self, S: Array) -> Int[Array, ""]:
        """The first coordinate that is 0 in every example (0-based)."""
        call = f"{type(self).__name__}.unseen_index"
        return _first_index(_unseen_mask(self._check_S(call, S)), call)

    def loss(self, w: Float[Array, " d"], z: Float[Array, " d"]) -> Float[Array, ""]:
        r"""$g(w,z) = \frac12\sum_i z(i) w(i)^2$."""
        call = f"{type(self).__name__}.loss"
        w, z = self._check_w(call, w), _check_example(self, call, z)
        return 0.5 * jnp.sum(z * jnp.square(w))

    def empirical_risk(self, w: Float[Array, " d"], S: Array) -> Float[Array, ""]:
        r"""$F_S(w) = \frac12 \sum_i c_i w(i)^2$, $c$ the mean of the examples."""
        call = f"{type(self).__name__}.empirical_risk"
        w, S = self._check_w(call, w), self._check_S(call, S, any_count=True)
        return 0.5 * jnp.dot(jnp.mean(S, axis=0), jnp.square(w))

    def population_risk(
        self,
        w: Float[Array, " d"],
        key: PRNGKeyArray | None = None,
        *,
        num_samples: int = 100_000,
    ) -> RiskEstimate:
        r"""$F(w) = \frac14\|w\|^2$ exactly (``key``, ``num_samples`` unused)."""
        call = f"{type(self).__name__}.population_risk"
        w = self._check_population(call, w, key, num_samples)
        value = 0.25 * jnp.sum(jnp.square(w))
        return RiskEstimate(value, jnp.zeros_like(value), jnp.asarray(True))

    def bad_erm(self, S: Array) -> Float[Array, " d"]:
        r"""$e_I$: an ERM with population risk $\frac14$."""
        return jax.nn.one_hot(self.unseen_index(S), self.d, dtype=self.dtype)

    def saer_minimizer(self, S: Array, radius) -> tuple[Array, Array]:
        r"""$w = 0$ and $F_S^r(0) = \frac{r^2}{2}\max_i c_i$ ($c$ the mean example).

        $F_S^r$ is convex and even, so 0 minimizes it.
        """
        call = f"{type(self).__name__}.saer_minimizer"
        radius = check_real(call, "radius", radius, lower=0.0)
        S = self._check_S(call, S)
        value = 0.5 * jnp.square(radius) * jnp.max(jnp.mean(S, axis=0))
        return self.population_minimizer(), value

    def population_minimizer(self) -> Float[Array, " d"]:
        r"""$w^\star = 0$."""
        return jnp.zeros((self.d,), self.dtype)
