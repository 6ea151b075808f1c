"""Theorems 6 and 7: SAM stuck at a sharp point, and SAM amplifying a tiny trigger."""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

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
    check_real_array,
    is_concrete,
)
from ._base import (
    AbstractProblem,
    RiskEstimate,
    bernoulli_sum_expectation,
    exactly_one_unseen_probability,
    rejection_sample,
)
from ._erm import (
    _TOO_LARGE,
    _check_example,
    _first_index,
    _is_bits,
    _sample_bits,
    _unseen_mask,
)
from ._kernel import AbstractFusedKernel, BlockIterate, KernelMetrics, flat_blocks


class SAMSharp(AbstractProblem):
    r"""Theorem 6 of arXiv 2511.03548: SAM started at 0 never moves off a sharp point.

    One deterministic loss on $W = [-1, 1]$ ($d = 1$): $f(w) = \frac12\max(0, w)^2$,
    1-smooth, 1-Lipschitz on $W$, with the flat minimizer $w^\star = -\frac12$
    ($f = 0$ on $[-1, 0]$, so $w^\star$ is $\frac12$-flat inside $W$). At $w_1 = 0$
    the gradient is 0, so SAM's normalized ascent is a no-op and $w_t \equiv 0$
    (proof of Theorem 6), while the SAER is $F^r(w) = \frac12\max(0, w + r)^2$ and
    $F^r(0) - F^r(-\frac12) = \frac12 r^2$ exactly for $r \in [0, \frac12]$
    (Theorem 6, Appendix C.2). The proof's "$f'(w) = w$ for $w\neq0$" should read $w>0$.

    The distribution is a point mass: each example is the constant ``z = [0.]``,
    kept so that every problem shares one interface.

    Args:
        n: number of (identical) training examples, $n \ge 1$.
        dtype: floating dtype (float64 needs ``jax_enable_x64``).
    """

    n: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)

    def __init__(self, n: int = 1, *, dtype=jnp.float64):
        call = type(self).__name__
        self.n = check_int(call, "n", n, 1)
        self.dtype = check_dtype(call, dtype)

    @property
    def d(self) -> int:
        """$d = 1$: the domain is the interval $[-1, 1]$."""
        return 1

    @property
    def beta(self) -> float:
        """1-smooth."""
        return 1.0

    @property
    def lipschitz(self) -> float:
        """1-Lipschitz on $[-1, 1]$."""
        return 1.0

    @property
    def rho(self) -> float:
        r"""Flatness radius of $w^\star=-\frac12$ inside $W=[-1,1]$: $\frac12$."""
        return 0.5

    @property
    def example_shape(self) -> tuple[int, ...]:
        """An example is the constant ``[0.]``: ``(1,)``."""
        return (1,)

    def in_support(self, z: Array) -> Bool[Array, ""]:
        """The only example is ``[0.]``."""
        return jnp.all(z == 0)

    def sample(self, key: PRNGKeyArray | None = None) -> Float[Array, "n 1"]:
        """``n`` copies of the single example ``[0.]`` (``key`` is unused)."""
        check_prng_key(f"{type(self).__name__}.sample", key, optional=True)
        return jnp.zeros((self.n, 1), self.dtype)

    def loss(self, w: Float[Array, " 1"], z: Float[Array, " 1"]) -> Float[Array, ""]:
        r"""$f(w) = \frac12\max(0, w)^2$ (``z`` is ignored)."""
        call = f"{type(self).__name__}.loss"
        w = self._check_w(call, w)
        _check_example(self, call, z)
        return 0.5 * jnp.square(jnp.maximum(w[0], 0.0))

    def population_risk(
        self,
        w: Float[Array, " 1"],
        key: PRNGKeyArray | None = None,
        *,
        num_samples: int = 100_000,
    ) -> RiskEstimate:
        """$F(w) = f(w)$ exactly (deterministic loss)."""
        call = f"{type(self).__name__}.population_risk"
        w = self._check_population(call, w, key, num_samples)
        value = self.loss(w, jnp.zeros((1,), self.dtype))
        return RiskEstimate(value, jnp.zeros_like(value), jnp.asarray(True))

    def saer(self, w: Float[Array, " 1"], radius) -> Float[Array, ""]:
        r"""The SAER in closed form, $F^r(w) = \frac12\max(0, w + r)^2$."""
        call = f"{type(self).__name__}.saer"
        w = self._check_w(call, w)
        radius = check_real(call, "radius", radius, lower=0.0)
        return 0.5 * jnp.square(jnp.maximum(w[0] + radius, 0.0))

    def saer_minimizer(self, S: Array, radius) -> tuple[Array, Array]:
        r"""The minimizer of $F^r$ on $[-1,1]$: $-\frac12$ if $r\le\frac12$, else -1."""
        call = f"{type(self).__name__}.saer_minimizer"
        radius = check_real(call, "radius", radius, lower=0.0)
        self._check_S(call, S)
        w = jnp.where(radius <= 0.5, -0.5, -1.0).astype(self.dtype)[None]
        return w, self.saer(w, radius)

    def flat_minimizer(self) -> Float[Array, " 1"]:
        r"""$w^\star = -\frac12$: a minimizer of $F^r$ for every $r\le\frac12$."""
        return jnp.full((1,), -0.5, self.dtype)


class SAMTrap(AbstractProblem):
    r"""Theorem 7 of arXiv 2511.03548: SAM's risk is $\Omega(\eta^2 r^2 T)$, realizable.

    $d = T\cdot 2^n + 1$ (the statement's $d = 2^nT$ misses the $+1$), $\mathcal{Z} =
    \{0,1\}^{2^n}$ uniform, blocks $w^{(i)}$ of length $T$ (block $(i,j)$, 0-based, is
    flat coordinate $Ti+j$) and the extra coordinate last. Appendix C.3:

    $$f = \underbrace{\tfrac12\sum_{i}\sum_{j\ge2} z(i)\,w^{(i)}(j)^2}_{f_1}
    + \underbrace{\tfrac12\sum_i\sum_{j\ge2}\big[w^{(i)}(j)-\delta_j\big(w^{(i)}(j-1)
    + \lambda\mathbb{1}[j=2]\big)\big]_+^2}_{f_2\text{ (chain)}}
    + \underbrace{\tfrac{\gamma}{2}[v_z^\top w + \delta_1]_+^2}_{f_3\text{ (trigger)}}$$

    with $v_z$ on the first coordinate of each block ($1$ if $z(i)=1$, else
    $-\frac{1}{2(d-1)}$) and $1$ on the extra coordinate. The constants
    $\lambda = \frac{r}{4d(d-1)}$,
    $\delta_1 = \frac{\eta\lambda}{2\sqrt d\max\{1,\eta\}}$,
    $\gamma = \frac{\lambda}{\max\{1,\eta\}(r+\delta_1)}$ are the closed form of the
    paper's circular definitions (Theorem 7, Appendix C.3; see the errata page). The
    chain constants $\delta_2..\delta_T$ are only proved to exist. ``delta`` defaults to
    ``proof_schedule(n, T)``, a schedule fixed before sampling under which Lemma 8's
    invariant $-\sigma\le w_t^{(I)}(2)\le0$ holds on every training set of the good
    event (see ``proof_schedule``); ``delta=0.03`` (the constant schedule (a) of the
    paper's numeric checks) is a documented alternative that lies outside the
    proof: with it $w_t^{(I)}(2)$ turns positive at $t=3$. Convex, 6-smooth,
    6-Lipschitz (Theorem 7; Lemma 6 says 7), realizable by
    $w^\star = -\frac{\lambda}{2} e_d$.

    The constants are about $10^{-13}$ and SAM's first gradient norm as small as
    $10^{-20}$, so the construction exists in float64 only: ``dtype=float32`` is
    refused (an implementation note; see the errata page).

    Examples:
        >>> problem = SAMTrap(n=6, T=16, learning_rate=1 / 24, radius=0.5)
        >>> problem.d
        1025

    Args:
        n: number of training examples ($n \ge 6$ for the theorem).
        T: number of iterations the construction is built for ($T \ge 6$).
        learning_rate: SAM's step size $\eta > 0$ (the constants depend on it).
        radius: SAM's perturbation radius $r > 0$; the theorem needs
            $\eta r \le \frac{1}{2\sqrt T}$.
        delta: $\delta_2..\delta_T \in (0, 1]$, a scalar or an array of length $T-1$;
            default ``proof_schedule(n, T)`` (inside Lemma 8's proof). A constant
            such as 0.03 breaks Lemma 8's invariant (outside the proof).
        dtype: must be float64 (needs ``jax_enable_x64``).
        check_theorem: when false, allow $n, T \ge 2$ and any $\eta r$.
        max_support: exact population risk of the trigger term when at most this many
            first-block coordinates are non-zero; beyond, Monte Carlo.
        max_bytes: refuse sizes whose arrays would exceed this many bytes.
    """

    n: int = eqx.field(static=True)
    T: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)
    max_support: int = eqx.field(static=True)
    learning_rate: Float[Array, ""]
    radius: Float[Array, ""]
    delta: Float[Array, " T-1"]
    lambda_: Float[Array, ""]
    delta1: Float[Array, ""]
    gamma: Float[Array, ""]

    def __init__(
        self,
        n: int,
        T: int,
        learning_rate,
        radius,
        delta=None,
        *,
        dtype=jnp.float64,
        check_theorem: bool = True,
        max_support: int = 12,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        call = type(self).__name__
        minimum = 6 if check_theorem else 2
        self.n = check_int(call, "n", n, minimum, MAX_EXPONENT, _TOO_LARGE)
        self.T = check_int(call, "T", T, minimum)
        if np.dtype(dtype) != np.float64:
            raise ValueError(
                f"`{call}(dtype=...)` must be float64, got {np.dtype(dtype)}: the "
                "construction's constants are about 1e-13 and SAM's first gradient "
                "norm can be 1e-20, below float32's resolution (see the errata page)"
            )
        self.dtype = check_dtype(call, dtype)
        self.max_support = check_int(call, "max_support", max_support, 0)
        d = 2**self.n * self.T + 1
        check_memory(call, (d + self.n * 2**self.n) * 8, max_bytes)
        learning_rate = check_real(
            call, "learning_rate", learning_rate, lower=0.0, lower_open=True
        )
        radius = check_real(call, "radius", radius, lower=0.0, lower_open=True)
        if check_theorem and is_concrete(learning_rate) and is_concrete(radius):
            limit = 1.0 / (2.0 * math.sqrt(self.T))
            product = float(learning_rate) * float(radius)
            if product > limit * (1 + 1e-12):
                raise ValueError(
                    f"`{call}`: Theorem 7 needs learning_rate * radius <= "
                    f"1/(2*sqrt(T)) = {limit:.6g}, got {product:.6g} "
                    "(pass check_theorem=False to build it anyway)"
                )
        if delta is None:
            delta = self.proof_schedule(self.n, self.T)
        if isinstance(delta, int | float | list | tuple) and not isinstance(
            delta, bool
        ):
            delta = np.asarray(delta, self.dtype)
        delta = check_real_array(
            call, "delta", delta, lower=0.0, upper=1.0, lower_open=True
        )
        if delta.shape not in ((), (self.T - 1,)):
            raise ValueError(
                f"`{call}(delta=...)` must be a scalar or have shape "
                f"({self.T - 1},) (T - 1), got shape {delta.shape}"
            )
        self.delta = jnp.broadcast_to(delta.astype(self.dtype), (self.T - 1,))
        self.learning_rate = jnp.asarray(learning_rate, self.dtype)
        self.radius = jnp.asarray(radius, self.dtype)
        scale = jnp.maximum(1.0, self.learning_rate)
        self.lambda_ = self.radius / (4.0 * d * (d - 1))
        self.delta1 = self.learning_rate * self.lambda_ / (2.0 * math.sqrt(d) * scale)
        self.gamma = self.lambda_ / (scale * (self.radius + self.delta1))

    @staticmethod
    def proof_schedule(n: int, T: int, delta: float = 0.03) -> np.ndarray:
        r"""A chain schedule $\delta_2..\delta_T$ fixed before sampling (in the proof).

        Lemma 8 of arXiv 2511.03548 (Appendix C.3) needs the invariant
        $-\sigma\le u_t(2)\le0$ with $\sigma=|w_2^{(I)}(2)|$. SAM's first step
        (Lemma 7) gives, in closed form, with $\kappa=\frac1{2(d-1)}$ and
        $v_S=\frac1n\sum_k v_{z_k}$,

        $$\sigma = \eta\,\delta_2\Big(\frac{r\kappa}{\|v_S\|}-\lambda\Big),
        \qquad \|v_S\|^2 = 1+\sum_i\big(c_i(1+\kappa)-\kappa\big)^2 ,$$

        ($c_i$ the fraction of examples with $z(i)=1$), because the ascent point
        $r v_S/\|v_S\|$ puts $-r\kappa/\|v_S\|$ on the first coordinate of block
        $I$ and the $j=2$ link then has slope $\delta_2(r\kappa/\|v_S\|-\lambda)$.
        On the good event $c_I=0$ and $c_i\le1$, so $\|v_S\|^2\le2^n+\kappa^2$
        (attained when every other coordinate is 1 in every example) and, with
        $\lambda=\frac{r}{4d(d-1)}$,

        $$\sigma\ \ge\ \sigma_{\min} = \eta r\,\delta_2\,s,\qquad
        s=\frac{\kappa}{\sqrt{2^n+\kappa^2}}-\frac1{4d(d-1)} > 0 .$$

        The only step that moves $u(2)$ after the first is the $j=3$ one, which
        gives $u_3(2)=-\sigma+\eta\delta_3(r\sqrt{1+\delta_3^2}+\delta_3\sigma)$;
        it stays in $[-\sigma,0]$ for every $\sigma\ge\sigma_{\min}$ iff
        $\delta_3(\sqrt{1+\delta_3^2}+\delta_3\delta_2 s)\le\delta_2 s$. The
        schedule takes $\delta_3=\frac12\delta_2 s$ (which satisfies it with room
        to spare: the left side is about $\frac12\delta_2 s$), and
        $\delta_j=\delta$ for $j=2$ and $j\ge4$. It depends on $n$ and $T$ only
        (not on $\eta$, $r$ or $S$), so it defines one loss before sampling. The
        paper's numeric schedule (b) ($\delta_3=0.01\sigma/(\eta r)$) used $\sigma$
        of the run on $S$; this one uses its lower bound over the good event.

        Args:
            n: the sample size $n$.
            T: the number of iterations $T\ge2$.
            delta: $\delta_2$ and $\delta_j$ for $j\ge4$.

        Returns:
            The $T-1$ values $\delta_2..\delta_T$ as a float64 NumPy array.

        Examples:
            >>> schedule = SAMTrap.proof_schedule(6, 16)
            >>> float(schedule[0]), f"{schedule[1]:.4e}", float(schedule[2])
            (0.03, '9.1195e-07', 0.03)
        """
        d = 2**n * T + 1
        kappa = 1.0 / (2.0 * (d - 1))
        s = kappa / math.sqrt(2**n + kappa**2) - 1.0 / (4.0 * d * (d - 1))
        schedule = np.full((T - 1,), float(delta))
        if T >= 3:
            schedule[1] = 0.5 * float(delta) * s
        return schedule

    def chain_sigma(self, S: Array) -> Float[Array, ""]:
        r"""$\sigma=|w_2^{(I)}(2)|$ of SAM from $w_1=0$ on ``S``, in closed form.

        $\sigma=\eta\delta_2(r\kappa/\|v_S\|-\lambda)$ (see ``proof_schedule``).
        """
        v_first = jnp.mean(jnp.where(S == 1, 1.0, -self._kappa), axis=0)
        norm = jnp.sqrt(1.0 + jnp.sum(jnp.square(v_first)))
        return (
            self.learning_rate
            * self.delta[0]
            * (self.radius * self._kappa / norm - self.lambda_)
        )

    def sigma_lower_bound(self) -> Float[Array, ""]:
        r"""$\sigma_{\min}=\eta r\delta_2 s$: $\sigma$'s infimum over the good event.

        See ``proof_schedule``; attained when every coordinate but $I$ is 1 in every
        example.
        """
        d = self.d
        s = self._kappa / math.sqrt(2**self.n + self._kappa**2) - 1.0 / (
            4.0 * d * (d - 1)
        )
        return self.learning_rate * self.radius * self.delta[0] * s

    def in_proof(self) -> Bool[Array, ""]:
        r"""Whether $\delta_3$ keeps Lemma 8's invariant on every good-event ``S``.

        The condition $\delta_3(\sqrt{1+\delta_3^2}+\delta_3\delta_2 s)\le
        \delta_2 s$ of ``proof_schedule`` (true for ``T < 3``: there is no
        $j=3$ step).
        """
        if self.T < 3:
            return jnp.asarray(True)
        d3 = self.delta[1]
        ds = self.sigma_lower_bound() / (self.learning_rate * self.radius)
        return d3 * (jnp.sqrt(1.0 + d3**2) + d3 * ds) <= ds

    @property
    def d(self) -> int:
        """$d = T 2^n + 1$."""
        return 2**self.n * self.T + 1

    @property
    def beta(self) -> float:
        """6-smooth (Lemma 6: 1 + 4 + 1)."""
        return 6.0

    @property
    def lipschitz(self) -> float:
        """6-Lipschitz on the unit ball (Theorem 7; Lemma 6 states 7)."""
        return 6.0

    @property
    def rho(self) -> float:
        r"""Realizable case: $\rho = 0$."""
        return 0.0

    @property
    def good_event_probability(self) -> float:
        """$(1-2^{-n})^{2^n-1}$: exactly one coordinate unseen (exact)."""
        return exactly_one_unseen_probability(self.n)

    @property
    def example_shape(self) -> tuple[int, ...]:
        r"""An example is a vector of $\{0,1\}^{2^n}$: ``(2**n,)``."""
        return (2**self.n,)

    def in_support(self, z: Array) -> Bool[Array, ""]:
        """Every entry of ``z`` is 0 or 1."""
        return _is_bits(z)

    def extra_metrics(self, S: Array) -> dict:
        r"""``certificate``: Theorem 7's exact lower bound on $F(w)$ (see below)."""
        S = self._check_S(f"{type(self).__name__}.extra_metrics", S)
        return {"certificate": lambda w: self.certificate(w, S)}

    def blocks(self, w: Float[Array, " d"]) -> Float[Array, "m T"]:
        r"""The $2^n \times T$ block view of $w$ (without the last coordinate)."""
        w = self._check_w(f"{type(self).__name__}.blocks", w)
        return w[:-1].reshape(2**self.n, self.T)

    def sample(self, key: PRNGKeyArray) -> Float[Array, "n m"]:
        r"""``n`` uniform examples from $\{0,1\}^{2^n}$."""
        key = check_prng_key(f"{type(self).__name__}.sample", key)
        return _sample_bits(key, self.n, 2**self.n, self.dtype)

    def good_event(self, S: Array) -> Bool[Array, ""]:
        r"""Exactly one coordinate $I$ has $z(I)=0$ for every $z\in S$."""
        S = self._check_S(f"{type(self).__name__}.good_event", S)
        return jnp.sum(_unseen_mask(S)) == 1

    def sample_conditioned(self, key: PRNGKeyArray) -> Float[Array, "n m"]:
        r"""A training set from $\mathcal{D}^n$ given the good event (rejection).

        Acceptance probability ``good_event_probability`` $\ge 1/e$.
        """
        key = check_prng_key(f"{type(self).__name__}.sample_conditioned", key)
        return rejection_sample(self.sample, self.good_event, key)

    def unseen_index(self, S: Array) -> Int[Array, ""]:
        r"""The coordinate $I$ with $z(I)=0$ for every $z\in S$ (0-based)."""
        call = f"{type(self).__name__}.unseen_index"
        return _first_index(_unseen_mask(self._check_S(call, S)), call)

    @property
    def _kappa(self) -> float:
        return 1.0 / (2.0 * (self.d - 1))

    def _chain(self, blocks):
        previous = blocks[:, :-1].at[:, 0].add(self.lambda_)
        links = blocks[:, 1:] - self.delta[None, :] * previous
        return 0.5 * jnp.sum(jnp.square(jnp.maximum(links, 0.0)))

    def _trigger(self, x):
        return 0.5 * self.gamma * jnp.square(jnp.maximum(x + self.delta1, 0.0))

    def loss(self, w: Float[Array, " d"], z: Float[Array, " m"]) -> Float[Array, ""]:
        """$f = f_1 + f_2 + f_3$ of Theorem 7 (readable definition)."""
        call = f"{type(self).__name__}.loss"
        w, z = self._check_w(call, w), _check_example(self, call, z)
        blocks = self.blocks(w)
        f1 = 0.5 * jnp.sum(z[:, None] * jnp.square(blocks[:, 1:]))
        v_z = jnp.where(z == 1, 1.0, -self._kappa)
        return f1 + self._chain(blocks) + self._trigger(v_z @ blocks[:, 0] + w[-1])

    def empirical_risk(self, w: Float[Array, " d"], S: Array) -> Float[Array, ""]:
        """$F_S(w)$ in $O(d + n 2^n)$: counts for $f_1$, one product for triggers."""
        call = f"{type(self).__name__}.empirical_risk"
        w, S = self._check_w(call, w), self._check_S(call, S, any_count=True)
        blocks = self.blocks(w)
        tails = jnp.sum(jnp.square(blocks[:, 1:]), axis=1)
        f1 = 0.5 * jnp.dot(jnp.mean(S, axis=0), tails)
        first = blocks[:, 0]
        dots = (1.0 + self._kappa) * (S @ first) - self._kappa * jnp.sum(first) + w[-1]
        return f1 + self._chain(blocks) + jnp.mean(self._trigger(dots))

    def value_and_grad(
        self, w: Float[Array, " d"], S: Array
    ) -> tuple[Float[Array, ""], Float[Array, " d"]]:
        r"""$F_S(w)$ and $\nabla F_S(w)$ hand-fused on the $2^n\times T$ block view.

        The fast path the runner calls every step (Theorem 7 of arXiv 2511.03548,
        Appendix C.3). With $c_i = \frac1n\sum_k z_k(i)$, the chain links
        $\ell_{ij} = [w^{(i)}(j) - \delta_j(w^{(i)}(j-1) + \lambda\mathbb{1}[j=2])]_+$
        ($\ell_{i1} = \ell_{i,T+1} = 0$) and the trigger slopes
        $a_k = \frac{\gamma}{n}[v_{z_k}^\top w + \delta_1]_+$,

        $$\partial_{w^{(i)}(j)} F_S = c_i w^{(i)}(j)\mathbb{1}[j\ge2] + \ell_{ij}
        - \delta_{j+1}\ell_{i,j+1} + \mathbb{1}[j=1]\textstyle\sum_k a_k v_{z_k}(i),
        \qquad \partial_{w(d)} F_S = \sum_k a_k .$$

        That is one elementwise pass over the block view plus two $n\times 2^n$
        products, with no per-example copy of $w$. The value needs no second pass
        over $w$: $f_1 + f_2$ is quadratic in $w$ up to the links' offset, so the
        sum over coordinates of $w$ times the $f_1 + f_2$ partial derivative is
        $2(f_1 + f_2) + \delta_2\lambda\sum_i\ell_{i2}$ and
        $F_S = \frac12\big(\langle w, \nabla F_S\rangle - \langle w,
        \nabla f_3\rangle - \delta_2\lambda\sum_i \ell_{i2}\big) + f_3$, with
        $\nabla f_3$ supported on the first column and $w(d)$. (The identity rounds
        differently from the direct sum: a value that is 0 in exact arithmetic may
        come out as rounding noise the size of the terms' ulps, clipped at 0 from
        below.) Tests hold
        value and gradient equal to autodiff of the vmapped readable ``loss``.

        Args:
            w: the iterate.
            S: the training set, shape ``(n, 2**n)``.

        Returns:
            ``(F_S(w), grad F_S(w))``.
        """
        call = f"{type(self).__name__}.value_and_grad"
        w, S = self._check_w(call, w), self._check_S(call, S)
        blocks = self.blocks(w)
        grad_blocks, total, triggers, first_grad, links = _samtrap_gradient(
            self,
            blocks,
            w[-1],
            (1.0 + self._kappa) * S - self._kappa,
            jnp.mean(S, axis=0),
            _kick(self),
        )
        first = blocks[:, 0]
        grad = jnp.concatenate([grad_blocks.reshape(-1), total[None]])
        # One contiguous reduction of w * grad (XLA fuses it into a single pass);
        # summing the f_1 and f_2 terms directly would materialize slices of w.
        trigger_part = jnp.dot(first, first_grad) + w[-1] * total
        offset = self.delta[0] * self.lambda_ * jnp.sum(links[:, 0])
        quadratic = 0.5 * (jnp.sum(w * grad) - trigger_part - offset)
        value = jnp.maximum(quadratic, 0.0) + 0.5 * self.gamma * jnp.mean(
            jnp.square(triggers)
        )
        return value, grad

    def population_risk(
        self,
        w: Float[Array, " d"],
        key: PRNGKeyArray | None = None,
        *,
        num_samples: int = 100_000,
    ) -> RiskEstimate:
        r"""$F(w)$: $\mathbb{E}f_1 = \frac14\sum_i\sum_{j\ge2}w^{(i)}(j)^2$ and $f_2$
        exactly; $\mathbb{E}f_3$ exactly when at most ``max_support`` first-block
        coordinates are non-zero, else by Monte Carlo (needs ``key``).

        Along SAM's trajectory every first-block coordinate moves, so $\mathbb{E}f_3$
        (of order $\gamma\approx10^{-13}$) is estimated; ``certificate`` is the
        exact lower bound the theorem uses.
        """  # noqa: D205
        call = f"{type(self).__name__}.population_risk"
        w = self._check_population(call, w, key, num_samples)
        blocks = self.blocks(w)
        exact_part = 0.25 * jnp.sum(jnp.square(blocks[:, 1:])) + self._chain(blocks)
        first = blocks[:, 0]
        trigger = bernoulli_sum_expectation(
            self._trigger,
            w[-1] - self._kappa * jnp.sum(first),
            (1.0 + self._kappa) * first,
            max_support=self.max_support,
            key=key,
            num_samples=num_samples,
            call=f"{type(self).__name__}.population_risk",
        )
        return RiskEstimate(exact_part + trigger.value, trigger.stderr, trigger.exact)

    def certificate(self, w: Float[Array, " d"], S: Array) -> Float[Array, ""]:
        r"""The certificate $\frac14\sum_{j\ge2} w^{(I)}(j)^2 \le F(w)$ of Theorem 7."""
        block = jax.lax.dynamic_index_in_dim(
            self.blocks(w), self.unseen_index(S), axis=0, keepdims=False
        )
        return 0.25 * jnp.sum(jnp.square(block[1:]))

    def realizer(self) -> Float[Array, " d"]:
        r"""The realizer $w^\star = -\frac{\lambda}{2} e_d$, zero loss for every $z$."""
        return jnp.zeros((self.d,), self.dtype).at[-1].set(-0.5 * self.lambda_)

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
        r"""GD and SAM on the transposed block layout (see ``AbstractProblem``).

        The iterate is the $T\times 2^n$ transpose of the block matrix (row $j$
        holds coordinate $j$ of every block) and the last coordinate kept apart,
        so the chain's neighbours are whole rows and every pass over the iterate
        is contiguous and branch-free inside a row. One step evaluates the
        gradient of ``value_and_grad`` (the same formulas) with the trigger
        products against the precomputed $v_{z_k}$ matrix; SAM evaluates it
        twice (at $w$ and at $w + r g/\|g\|$; the second gradient and the update
        are one pass, the ascent point recomputed inside it rather than stored).
        """
        if algorithm not in ("gd", "sam"):
            return None
        S = jnp.asarray(S, self.dtype)
        return _SAMTrapKernel(
            problem=self,
            trigger_vectors=(1.0 + self._kappa) * S - self._kappa,
            counts=jnp.mean(S, axis=0),
            kick=_kick(self),
            learning_rate=jnp.asarray(learning_rate, self.dtype),
            radius=jnp.asarray(radius, self.dtype),
            ascent=algorithm == "sam",
        )


def _kick(problem: SAMTrap) -> Float[Array, " T-1"]:
    r"""The chain's offset $\lambda\mathbb{1}[j=2]$ on the links' previous column."""
    return jnp.zeros((problem.T - 1,), problem.dtype).at[0].set(problem.lambda_)


def _samtrap_gradient(problem: SAMTrap, blocks, last, trigger_vectors, counts, kick):
    r"""$\nabla F_S$ of Theorem 7 on the block view (``SAMTrap.value_and_grad``).

    The formulas are those of ``value_and_grad``; the fused kernel evaluates the
    same ones on the transposed layout (``_chain_gradient``), and tests hold both
    equal to autodiff of the readable loss. ``trigger_vectors`` are the
    $v_{z_k}$ without the last entry, $(1+\kappa)S - \kappa$, ``counts`` the
    $c_i$.

    Returns:
        ``(grad_blocks, grad_last, triggers, trigger_grad, links)``: the block
        matrix's gradient, $\partial_{w(d)}F_S = \sum_k a_k$, the triggers
        $[v_{z_k}^\top w + \delta_1]_+$, the trigger part of the first column and
        the chain links $\ell_{ij}$ ($j\ge2$).
    """
    delta = problem.delta
    links = jnp.maximum(
        blocks[:, 1:] - delta[None, :] * (blocks[:, :-1] + kick[None, :]), 0.0
    )
    triggers = jnp.maximum(
        trigger_vectors @ blocks[:, 0] + (last + problem.delta1), 0.0
    )
    slopes = (problem.gamma / problem.n) * triggers
    total = jnp.sum(slopes)
    trigger_grad = slopes @ trigger_vectors
    tails = counts[:, None] * blocks[:, 1:] + links
    grad = jnp.concatenate(
        [
            (trigger_grad - delta[0] * links[:, 0])[:, None],
            tails[:, :-1] - delta[None, 1:] * links[:, 1:],
            tails[:, -1:],
        ],
        axis=1,
    )
    return grad, total, triggers, trigger_grad, links


def _chain_gradient(columns, counts, delta, kick, trigger_grad):
    r"""$\nabla F_S$ of ``value_and_grad`` on the transposed blocks ($T\times 2^n$).

    ``trigger_grad`` is the trigger part of the first coordinate of every block,
    ``counts`` the $c_i$. Row $j$ of ``columns`` is coordinate $j$ of every
    block, so the chain's shifts run along the outer axis: the first and last
    rows are concatenated to the middle ones along it, and XLA's inner loops run
    over whole contiguous rows (the same stencil concatenated along the inner
    axis of the $2^n\times T$ layout ran about 2x slower in a microbenchmark on
    a 2-core CPU).
    """
    links = jnp.maximum(
        columns[1:] - delta[:, None] * (columns[:-1] + kick[:, None]), 0.0
    )
    tails = counts[None, :] * columns[1:] + links
    return jnp.concatenate(
        [
            (trigger_grad - delta[0] * links[0])[None],
            tails[:-1] - delta[1:, None] * links[1:],
            tails[-1:],
        ]
    )


class ColumnIterate(NamedTuple):
    r"""An iterate of the SAM kernel: the transposed block matrix and $w(d)$.

    Attributes:
        columns: $T\times 2^n$, row $j$ holds coordinate $j$ of every block.
        last: $w(d)$.
    """

    columns: Float[Array, "T m"]
    last: Float[Array, ""]


class _SAMTrapKernel(AbstractFusedKernel):
    r"""GD/SAM on ``SAMTrap``; state ``ColumnIterate`` (the blocks transposed).

    Per step: the triggers at $w$ ($n\times 2^n$ products on the first row), one
    pass writing $\nabla F_S(w)$, the reductions $\|\nabla F_S\|^2$ and
    $\langle w,\nabla F_S\rangle$ (the value identity of ``value_and_grad``),
    the triggers at the ascent point (its first row only), and one pass writing
    $w - \eta\nabla F_S(w + r g/\|g\|)$. ``scale * raw`` is never stored.
    """

    problem: SAMTrap
    trigger_vectors: Float[Array, "n m"]
    counts: Float[Array, " m"]
    kick: Float[Array, " T-1"]
    learning_rate: Float[Array, ""]
    radius: Float[Array, ""]
    ascent: bool = eqx.field(static=True)
    # One step per loop iteration: unrolling two made XLA merge both steps' running
    # sums into one fusion that it splits over threads, about 1.3x slower (2-core
    # CPU, 4 runs per vmap).
    unroll: ClassVar[int] = 1

    def init(self, w):
        return ColumnIterate(self.problem.blocks(w).T, w[-1])

    def iterate(self, state):
        return state

    def flat(self, iterate):
        return flat_blocks(BlockIterate(iterate.columns.T, iterate.last))

    def norm(self, state):
        columns, last = state
        return jnp.sqrt(jnp.sum(jnp.square(columns)) + jnp.square(last))

    def _trigger(self, first, last):
        """Triggers, the trigger part of the first column and of w(d)."""
        p = self.problem
        triggers = jnp.maximum(self.trigger_vectors @ first + (last + p.delta1), 0.0)
        slopes = (p.gamma / p.n) * triggers
        return triggers, slopes @ self.trigger_vectors, jnp.sum(slopes)

    def step(self, state, scale):
        p = self.problem
        raw, last = state.columns, scale * state.last
        first, second = scale * raw[0], scale * raw[1]
        triggers, trigger_grad, total = self._trigger(first, last)
        link = jnp.maximum(second - p.delta[0] * (first + p.lambda_), 0.0)
        first_grad = trigger_grad - p.delta[0] * link
        grad = _chain_gradient(
            scale * raw, self.counts, p.delta, self.kick, trigger_grad
        )
        grad_norm = jnp.sqrt(jnp.sum(jnp.square(grad)) + jnp.square(total))
        quadratic = 0.5 * (
            scale * jnp.sum(raw * grad)
            - jnp.dot(first, trigger_grad)
            - p.delta[0] * p.lambda_ * jnp.sum(link)
        )
        value = jnp.maximum(quadratic, 0.0) + 0.5 * p.gamma * jnp.mean(
            jnp.square(triggers)
        )
        if self.ascent:
            positive = grad_norm > 0
            factor = jnp.where(
                positive, self.radius / jnp.where(positive, grad_norm, 1.0), 0.0
            )
            _, ascent_grad, total = self._trigger(
                first + factor * first_grad, last + factor * total
            )
            grad = _chain_gradient(
                scale * raw + factor * grad,
                self.counts,
                p.delta,
                self.kick,
                ascent_grad,
            )
        new = ColumnIterate(
            scale * raw - self.learning_rate * grad, last - self.learning_rate * total
        )
        return new, KernelMetrics(value, grad_norm)
