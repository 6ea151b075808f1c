"""Benign smooth convex problems where GD generalizes at rate ~1/n (Theorems 4, 8)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._checks import (
    DEFAULT_MAX_BYTES,
    check_array,
    check_dtype,
    check_int,
    check_memory,
    check_prng_key,
    check_real,
    is_concrete,
)
from ._base import AbstractProblem, RiskEstimate


def _unit_tolerance(dtype) -> float:
    """Slack for unit norms and exact labels after rounding (64 ulps of 1)."""
    return 64 * float(jnp.finfo(dtype).eps)


def _check_example(problem, call: str, z) -> Array:
    """One example ``z`` of shape ``problem.example_shape``, or raise."""
    return check_array(
        call, "z", z, shape=problem.example_shape, expected="(problem.example_shape)"
    )


def _uniform_sphere(key: PRNGKeyArray, shape: tuple[int, ...], dtype) -> Array:
    """Uniform draws on the unit sphere of the last axis of ``shape``."""
    g = jax.random.normal(key, shape, dtype)
    return g / jnp.linalg.norm(g, axis=-1, keepdims=True)


class LeastSquares(AbstractProblem):
    r"""Realizable least squares on the unit ball, $f = \frac12(x^\top w - y)^2$.

    $x$ is uniform on the unit sphere of $\mathbb{R}^d$ and $y = x^\top w^\star$, so
    $f$ is convex, 1-smooth ($\|x\| = 1$), $(1+\|w^\star\|)$-Lipschitz on the unit
    ball, realizable ($\rho = 0$), and the population risk is the closed form
    $F(w) = \frac{\|w - w^\star\|^2}{2d}$ (because $\mathbb{E}xx^\top = I/d$). GD with
    $\eta\simeq1/\beta$ and $T=n$ reaches $O(1/n)$ risk here (Section 1 of the paper).

    An example ``z`` packs $(x, y)$ as one vector of length $d+1$.

    Args:
        d: dimension, $d \ge 1$.
        n: number of training examples, $n\ge1$.
        w_star: the realizer, inside the unit ball (default $\frac12 e_1$).
        dtype: floating dtype (float64 needs ``jax_enable_x64``).
        max_bytes: refuse sizes whose arrays would exceed this many bytes.
    """

    d_: int = eqx.field(static=True)
    n: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)
    w_star: Float[Array, " d"]

    def __init__(
        self,
        d: int,
        n: int,
        w_star=None,
        *,
        dtype=jnp.float64,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        call = type(self).__name__
        self.d_ = check_int(call, "d", d, 1)
        self.n = check_int(call, "n", n, 1)
        self.dtype = check_dtype(call, dtype)
        check_memory(
            call, (self.d_ + 1) * (self.n + 1) * self.dtype.itemsize, max_bytes
        )
        if w_star is None:
            w_star = np.zeros((self.d_,), self.dtype)
            w_star[0] = 0.5
        if isinstance(w_star, list | tuple):
            w_star = np.asarray(w_star, self.dtype)
        w_star = check_array(call, "w_star", w_star, shape=(self.d_,))
        w_star = w_star.astype(self.dtype)
        if is_concrete(w_star):
            norm = float(jnp.linalg.norm(w_star))
            if not norm <= 1.0:
                raise ValueError(
                    f"`{call}(w_star=...)` must lie in the unit ball, got norm "
                    f"{norm:.6g}"
                )
        self.w_star = w_star

    @property
    def d(self) -> int:
        """Dimension $d$."""
        return self.d_

    @property
    def beta(self) -> float:
        r"""1-smooth: $\|x\| = 1$."""
        return 1.0

    @property
    def lipschitz(self) -> float:
        r"""$1 + \|w^\star\|$ on the unit ball."""
        return 1.0 + float(jnp.linalg.norm(self.w_star))

    @property
    def rho(self) -> float:
        r"""Realizable, not flat: $\rho = 0$."""
        return 0.0

    @property
    def example_shape(self) -> tuple[int, ...]:
        """An example packs $(x, y)$: ``(d + 1,)``."""
        return (self.d_ + 1,)

    def in_support(self, z: Array) -> Bool[Array, ""]:
        r"""$\|x\| = 1$ and $y = x^\top w^\star$ (to 64 ulps), or $z = 0$.

        The zero example is the null example $z_0$ of leave-one-out stability
        ($f(w, z_0) = 0$ for every $w$), so a training set $S^{(i)}$ is accepted.
        """
        x, y = z[:-1], z[-1]
        tolerance = _unit_tolerance(self.dtype)
        unit = jnp.abs(jnp.linalg.norm(x) - 1.0) <= tolerance
        null = jnp.all(z == 0)
        return null | (unit & (jnp.abs(y - x @ self.w_star) <= tolerance))

    def sample(self, key: PRNGKeyArray) -> Float[Array, "n d+1"]:
        r"""``n`` examples $(x, x^\top w^\star)$ with $x$ uniform on the sphere."""
        key = check_prng_key(f"{type(self).__name__}.sample", key)
        x = _uniform_sphere(key, (self.n, self.d_), self.dtype)
        return jnp.concatenate([x, (x @ self.w_star)[:, None]], axis=1)

    def loss(self, w: Float[Array, " d"], z: Float[Array, " d+1"]) -> Float[Array, ""]:
        r"""$\frac12(x^\top w - y)^2$."""
        call = f"{type(self).__name__}.loss"
        w, z = self._check_w(call, w), _check_example(self, call, z)
        return 0.5 * jnp.square(jnp.dot(z[:-1], w) - z[-1])

    def population_risk(
        self,
        w: Float[Array, " d"],
        key: PRNGKeyArray | None = None,
        *,
        num_samples: int = 100_000,
    ) -> RiskEstimate:
        r"""$F(w) = \|w - w^\star\|^2 / (2d)$ exactly (no randomness used)."""
        call = f"{type(self).__name__}.population_risk"
        w = self._check_population(call, w, key, num_samples)
        value = jnp.sum(jnp.square(w - self.w_star)) / (2.0 * self.d_)
        return RiskEstimate(value, jnp.zeros_like(value), jnp.asarray(True))

    def population_minimizer(self) -> Float[Array, " d"]:
        r"""$w^\star$."""
        return self.w_star


class SquaredHinge(AbstractProblem):
    r"""A $\rho$-flat separable classification problem with the squared hinge loss.

    Labels $y = \pm1$ uniform and $x = y\,(m\,e_1 + \sqrt{1-m^2}\,u)$ with $u$ uniform
    on the unit sphere of the last $d-1$ coordinates, so every example has margin
    $m$ along $e_1$ and $\|x\| = 1$. The loss

    $$f(w,(x,y)) = \tfrac12\big[\tfrac{m}{2} - y\,x^\top w\big]_+^2$$

    is convex, 1-smooth, $(1+\frac m2)$-Lipschitz on the unit ball, and $\rho$-flat
    with $\rho = \frac m2$ around $w^\star = e_1$ (for $\|v\|\le\frac m2$,
    $y x^\top(e_1+v)\ge \frac m2$). A benign problem for Theorems 4 and 8 with
    $\rho > 0$.

    The population risk is exact: $y x^\top w = m w_1 + \sqrt{1-m^2}\,\|w_{2:}\|\,t$
    with $t = 2B-1$, $B\sim\mathrm{Beta}(\frac{d-2}2,\frac{d-2}2)$, and the truncated
    moments of $t$ are regularized incomplete beta functions.

    An example ``z`` packs $(x, y)$ as one vector of length $d+1$.

    Args:
        d: dimension, $d \ge 3$.
        n: number of training examples, $n\ge1$.
        margin: $m \in (0, 1)$.
        dtype: floating dtype (float64 needs ``jax_enable_x64``).
        max_bytes: refuse sizes whose arrays would exceed this many bytes.
    """

    d_: int = eqx.field(static=True)
    n: int = eqx.field(static=True)
    dtype: np.dtype = eqx.field(static=True)
    margin: Float[Array, ""]

    def __init__(
        self,
        d: int,
        n: int,
        margin=0.5,
        *,
        dtype=jnp.float64,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        call = type(self).__name__
        self.d_ = check_int(call, "d", d, 3)
        self.n = check_int(call, "n", n, 1)
        self.dtype = check_dtype(call, dtype)
        check_memory(
            call, (self.d_ + 1) * (self.n + 1) * self.dtype.itemsize, max_bytes
        )
        margin = check_real(
            call,
            "margin",
            margin,
            lower=0.0,
            upper=1.0,
            lower_open=True,
            upper_open=True,
        )
        self.margin = jnp.asarray(margin, self.dtype)

    @property
    def d(self) -> int:
        """Dimension $d$."""
        return self.d_

    @property
    def beta(self) -> float:
        r"""1-smooth: $\|x\| = 1$."""
        return 1.0

    @property
    def lipschitz(self) -> float:
        """$1 + m/2$ on the unit ball."""
        return 1.0 + 0.5 * float(self.margin)

    @property
    def rho(self) -> Float[Array, ""]:
        r"""Flatness radius $\rho = m/2$."""
        return 0.5 * self.margin

    @property
    def example_shape(self) -> tuple[int, ...]:
        """An example packs $(x, y)$: ``(d + 1,)``."""
        return (self.d_ + 1,)

    def in_support(self, z: Array) -> Bool[Array, ""]:
        r"""$y = \pm1$, $\|x\| = 1$ and $y x_1 = m$, to rounding (64 ulps)."""
        x, y = z[:-1], z[-1]
        tolerance = _unit_tolerance(self.dtype)
        unit = jnp.abs(jnp.linalg.norm(x) - 1.0) <= tolerance
        return (jnp.abs(y) == 1) & unit & (jnp.abs(y * x[0] - self.margin) <= tolerance)

    def sample(self, key: PRNGKeyArray) -> Float[Array, "n d+1"]:
        """``n`` examples $(x, y)$ with margin $m$ along $e_1$."""
        key = check_prng_key(f"{type(self).__name__}.sample", key)
        label_key, direction_key = jax.random.split(key)
        y = jax.random.rademacher(label_key, (self.n,), dtype=self.dtype)
        u = _uniform_sphere(direction_key, (self.n, self.d_ - 1), self.dtype)
        m = self.margin
        x = jnp.concatenate(
            [jnp.full((self.n, 1), m, self.dtype), jnp.sqrt(1.0 - m**2) * u], axis=1
        )
        return jnp.concatenate([y[:, None] * x, y[:, None]], axis=1)

    def loss(self, w: Float[Array, " d"], z: Float[Array, " d+1"]) -> Float[Array, ""]:
        r"""$\frac12[\frac m2 - y x^\top w]_+^2$."""
        call = f"{type(self).__name__}.loss"
        w, z = self._check_w(call, w), _check_example(self, call, z)
        margin = z[-1] * jnp.dot(z[:-1], w)
        return 0.5 * jnp.square(jnp.maximum(0.5 * self.margin - margin, 0.0))

    def population_risk(
        self,
        w: Float[Array, " d"],
        key: PRNGKeyArray | None = None,
        *,
        num_samples: int = 100_000,
    ) -> RiskEstimate:
        """$F(w)$ exactly, by truncated Beta moments (no randomness used)."""
        call = f"{type(self).__name__}.population_risk"
        w = self._check_population(call, w, key, num_samples)
        m = self.margin
        offset = 0.5 * m - m * w[0]
        slope = jnp.sqrt(1.0 - m**2) * jnp.linalg.norm(w[1:])
        a = 0.5 * (self.d_ - 2)
        positive = slope > 0
        safe_slope = jnp.where(positive, slope, 1.0)
        x = jnp.clip(0.5 * (offset / safe_slope + 1.0), 0.0, 1.0)
        e1 = betainc(a, a, x)
        eb = 0.5 * betainc(a + 1.0, a, x)
        eb2 = (a + 1.0) / (2.0 * (2.0 * a + 1.0)) * betainc(a + 2.0, a, x)
        et = 2.0 * eb - e1
        et2 = 4.0 * eb2 - 4.0 * eb + e1
        truncated = 0.5 * (offset**2 * e1 - 2.0 * offset * slope * et + slope**2 * et2)
        value = jnp.where(
            positive, truncated, 0.5 * jnp.square(jnp.maximum(offset, 0.0))
        )
        return RiskEstimate(value, jnp.zeros_like(value), jnp.asarray(True))

    def population_minimizer(self) -> Float[Array, " d"]:
        r"""$w^\star = e_1$: $\rho$-flat with $\rho = m/2$, zero risk."""
        return jnp.zeros((self.d_,), self.dtype).at[0].set(1.0)
