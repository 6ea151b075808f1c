r"""Scale-aware sharpness: adaptive (ASAM) worst and average case, the $\alpha'$ search.

Perturbations measured relative to the parameters' magnitudes, $|w_i|$, so that the
measures do not change when a ReLU network's layers are rescaled (Dinh et al. 2017).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from .._checks import check_int, check_key, check_real, check_scalar_loss
from ._base import Estimate, bisect_largest, flatten_loss
from ._pac_bayes import expected_sharpness
from ._sharpness import box_ascent


class AdaptiveSharpness(NamedTuple):
    r"""Worst-case adaptive sharpness and the perturbation that attains it.

    Attributes:
        value: $\max_{\|\delta\odot c^{-1}\|_p\le\rho} L(w+\delta) - L(w) \ge 0$,
            a lower bound (the best value projected ascent found).
        maximum: the best $L(w+\delta)$ found.
        perturbation: the best $\delta$, structured like $w$.
        method: always ``"lower_bound"`` (static string).
    """

    value: Float[Array, ""]
    maximum: Float[Array, ""]
    perturbation: PyTree
    method: str


def adaptive_sharpness(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    rho: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    p: Literal[2, "inf"] = 2,
    eta: Float[Array, ""] | float = 0.0,
    num_restarts: int = 8,
    num_steps: int = 200,
    learning_rate: Float[Array, ""] | float = 0.5,
) -> AdaptiveSharpness:
    r"""Worst-case adaptive sharpness, perturbations relative to $|w|$ (ASAM).

    $\max_{\|\delta\odot c^{-1}\|_p\le\rho} L(w+\delta) - L(w)$ with
    $c = |w| + \eta$ elementwise.
    The sharpness ASAM minimizes (Kwon et al. 2021, Definition 1 with
    $T_w = \mathrm{diag}(|w|+\eta)$) and the measure Andriushchenko et al. (2023)
    found the most predictive of the worst-case ones. Substituting
    $\delta = c\odot u$ makes it $\max_{\|u\|_p\le\rho} L(w + c\odot u) - L(w)$,
    maximized by projected gradient ascent in $u$ from ``num_restarts`` starts
    ($u = 0$ and uniform points of the ball or box): for $p = 2$ normalized gradient
    steps projected on the ball, for $p=\infty$ sign steps clipped to the box, the
    step length decaying linearly from ``learning_rate`` $\cdot\rho$ to 0
    (Andriushchenko et al. use auto-PGD, an adaptive step of the same ascent).
    Every iterate is feasible, so the value is a *lower bound* on the maximum, never
    negative.

    With $\eta = 0$ it is invariant under any rescaling $w\mapsto s\odot w$
    ($s > 0$) that leaves the loss unchanged, e.g. a ReLU layer times $\alpha$ and
    the next times $1/\alpha$. For a quadratic $\frac12w^\top Aw$ and $p = 2$ it is
    the trust-region problem of the matrix $CAC$, $C = \mathrm{diag}(c)$; where
    $Aw = 0$ it equals $\frac12\rho^2\lambda_{\max}(CAC)$.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        rho: the radius $\rho > 0$.
        key: PRNG key for the random starts.
        p: the norm, ``2`` or ``"inf"`` (static).
        eta: the offset $\eta \ge 0$ of $c = |w| + \eta$ (lets zero weights move).
        num_restarts: number of starts, $\ge 1$ (the first is $u = 0$).
        num_steps: ascent steps per start, $\ge 1$.
        learning_rate: initial step as a fraction of $\rho$, $> 0$.

    Returns:
        An ``AdaptiveSharpness``.

    Raises:
        ValueError: on a non-scalar loss, a non-positive ``rho`` or
            ``learning_rate``, a negative ``eta``, an unknown ``p``, or counts
            below 1.

    References:
        Kwon, Kim, Park, Choi (2021), "ASAM: Adaptive Sharpness-Aware Minimization
        for Scale-Invariant Learning of Deep Neural Networks", ICML, Definition 1.
        Andriushchenko, Croce, Müller, Hein, Flammarion (2023), "A Modern Look at
        the Relationship between Sharpness and Generalization", ICML, §3.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)
        >>> result = adaptive_sharpness(
        ...     loss_fn, jnp.array([1.0, 0.5]), 0.1, key=jax.random.key(0), p="inf"
        ... )
        >>> # the vertex (1.1, 0.55): 0.5 * (1.21 - 1) + 2 * (0.3025 - 0.25)
        >>> round(float(result.value), 10)
        0.21
    """
    call = "adaptive_sharpness"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    check_real(call, "rho", rho, lower=0.0, lower_open=True)
    check_real(call, "eta", eta, lower=0.0)
    check_real(call, "learning_rate", learning_rate, lower=0.0, lower_open=True)
    if p not in (2, "inf"):
        raise ValueError(f"`{call}(p=...)` must be 2 or 'inf', got {p!r}")
    num_restarts = check_int(call, "num_restarts", num_restarts, 1)
    num_steps = check_int(call, "num_steps", num_steps, 1)
    return _adaptive_sharpness(
        loss_fn,
        w,
        jnp.asarray(rho),
        key,
        p,
        jnp.asarray(eta),
        num_restarts,
        num_steps,
        jnp.asarray(learning_rate),
    )


@eqx.filter_jit
def _adaptive_sharpness(
    loss_fn, w, rho, key, p, eta, num_restarts, num_steps, learning_rate
):
    x0, unravel, flat_loss = flatten_loss(loss_fn, w)
    d, dtype = x0.shape[0], x0.dtype
    rho = rho.astype(dtype)
    scale = jnp.abs(x0) + eta
    loss = flat_loss(x0)
    if p == "inf":
        u, maximum = box_ascent(
            lambda v: flat_loss(x0 + v),
            jnp.zeros_like(x0),
            rho * scale,
            key,
            num_restarts,
            num_steps,
            learning_rate,
        )
        delta = u
    else:
        delta, maximum = _ball_ascent(
            flat_loss, x0, scale, rho, key, num_restarts, num_steps, learning_rate
        )
    improved = maximum >= loss
    maximum = jnp.where(improved, maximum, loss)
    delta = jnp.where(improved, delta, jnp.zeros((d,), dtype))
    return AdaptiveSharpness(maximum - loss, maximum, unravel(delta), "lower_bound")


def _ball_ascent(flat_loss, x0, scale, rho, key, num_restarts, num_steps, rate):
    r"""$\max_{\|u\|_2\le\rho} L(x_0 + c\odot u)$ by projected normalized ascent."""
    d, dtype = x0.shape[0], x0.dtype
    tiny = jnp.finfo(dtype).tiny

    def objective(u):
        return flat_loss(x0 + scale * u)

    value_and_grad = jax.value_and_grad(objective)
    directions = jax.random.normal(key, (num_restarts - 1, d), dtype)
    radii = jax.random.uniform(jax.random.fold_in(key, 1), (num_restarts - 1, 1), dtype)
    directions = directions / jnp.maximum(
        jnp.linalg.norm(directions, axis=1, keepdims=True), tiny
    )
    starts = jnp.concatenate([jnp.zeros((1, d), dtype), rho * radii * directions])

    def project(u):
        norm = jnp.linalg.norm(u)
        return u * jnp.minimum(1.0, rho / jnp.maximum(norm, tiny))

    def ascend(start):
        def step(t, carry):
            u, best_u, best = carry
            value, grad = value_and_grad(u)
            improved = value > best
            best_u = jnp.where(improved, u, best_u)
            best = jnp.where(improved, value, best)
            size = rate * rho * (1.0 - t / num_steps)
            u = project(u + size * grad / jnp.maximum(jnp.linalg.norm(grad), tiny))
            return u, best_u, best

        initial = (start, start, jnp.array(-jnp.inf, dtype))
        u, best_u, best = jax.lax.fori_loop(0, num_steps, step, initial)
        value = objective(u)
        improved = value > best
        return jnp.where(improved, u, best_u), jnp.where(improved, value, best)

    perturbations, maxima = jax.vmap(ascend)(starts)
    best = jnp.argmax(maxima)
    return scale * perturbations[best], maxima[best]


def average_adaptive_sharpness(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    rho: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    eta: Float[Array, ""] | float = 0.0,
    num_samples: int = 100,
    probe_batch: int | None = None,
) -> Estimate:
    r"""Average-case adaptive sharpness: Gaussian noise scaled by $|w|$.

    $\mathbb{E}_{\delta\sim N(0,\rho^2\mathrm{diag}(c^2))}L(w+\delta) - L(w)$ with
    $c = |w|+\eta$ elementwise.
    The average-case counterpart of ``adaptive_sharpness`` (Andriushchenko et al.
    2023, §3), estimated with antithetic pairs as ``expected_sharpness`` with
    ``magnitude_offset = eta`` and $\sigma = \rho$ (the same numbers). For a
    quadratic $\frac12w^\top Aw$ it is $\frac12\rho^2\,\mathrm{tr}(CAC) =
    \frac12\rho^2\sum_i a_{ii}c_i^2$ exactly in expectation; with $\eta = 0$ it is
    invariant under loss-preserving rescalings of a ReLU network.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        rho: the scale $\rho > 0$.
        key: PRNG key for the perturbations.
        eta: the offset $\eta \ge 0$.
        num_samples: antithetic pairs, $\ge 1$.
        probe_batch: pairs per chunk (static; default from ``DEFAULT_PROBE_MEMORY``).

    Returns:
        An ``Estimate``.

    Raises:
        ValueError: as ``expected_sharpness``.

    References:
        Andriushchenko, Croce, Müller, Hein, Flammarion (2023), "A Modern Look at
        the Relationship between Sharpness and Generalization", ICML, §3. Kwon et
        al. (2021), ICML.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)
        >>> w = jnp.array([1.0, 0.5])  # (1/2) rho^2 (1 * 1 + 4 * 0.25) = rho^2
        >>> result = average_adaptive_sharpness(
        ...     loss_fn, w, 0.1, key=jax.random.key(0), num_samples=2000
        ... )
        >>> bool(abs(result.value - 0.01) < 4 * result.stderr)
        True
    """
    return expected_sharpness(
        loss_fn,
        w,
        rho,
        key=key,
        num_samples=num_samples,
        magnitude_offset=eta,
        probe_batch=probe_batch,
    )


class SharpnessScale(NamedTuple):
    r"""The largest box scale $\alpha'$ found by bisection.

    Attributes:
        value: the largest tested $\alpha$ whose box maximum stayed within the
            threshold (0 when none did).
        upper: the smallest tested $\alpha$ above it that failed (``inf`` when
            ``max_alpha`` passed).
        bracketed: false when ``max_alpha`` itself passed.
        method: always ``"lower_bound"``: the box maxima are lower bounds, so
            ``value`` is an upper bound on the true $\alpha'$ (static string).
    """

    value: Float[Array, ""]
    upper: Float[Array, ""]
    bracketed: Bool[Array, ""]
    method: str


def sharpness_alpha(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    threshold: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    magnitude_offset: Float[Array, ""] | float | None = None,
    max_alpha: Float[Array, ""] | float = 1.0,
    num_bisections: int = 30,
    num_restarts: int = 4,
    num_steps: int = 50,
    learning_rate: Float[Array, ""] | float = 0.1,
) -> SharpnessScale:
    r"""The largest $\alpha'$ with $\max_{|u_i|\le\alpha' b_i}L(w+u) - L(w)\le\tau$.

    Jiang et al.'s worst-case sharpness measures (2019, §C): ``sharpness.*`` with a
    uniform box, $b_i = 1$, and the magnitude-aware ``sharpness.mag.*`` with
    $b_i = |w_i| + \epsilon$ (``magnitude_offset`` $=\epsilon$; with $\epsilon = 1$ the
    box is Keskar et al.'s $C_\epsilon$). Their measures are $1/\alpha'^2$ and
    $\|w - w_0\|^2/\alpha'^2$-type ratios of it. Bisection on
    $\alpha\in[0,$ ``max_alpha``$]$; each step maximizes over the box by projected
    sign ascent (``keskar_sharpness``'s maximizer) from the same random starts. The
    maxima are lower bounds, so a tested $\alpha$ may pass that a perfect maximizer
    would fail: the result is an upper bound on $\alpha'$, exact when the ascent is
    (a separable convex quadratic, whose box maximum is the vertex
    $u_i = \alpha b_i\,\mathrm{sign}(w_i)$).

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        threshold: the allowed increase $\tau > 0$.
        key: PRNG key for the random starts.
        magnitude_offset: $\epsilon \ge 0$ for the magnitude-aware box; None for
            the uniform one.
        max_alpha: the upper end of the search, $> 0$.
        num_bisections: bisection steps (static, $\ge 1$).
        num_restarts: starts per box maximization, $\ge 1$.
        num_steps: ascent steps per start, $\ge 1$.
        learning_rate: initial step as a fraction of each half-width, $> 0$.

    Returns:
        A ``SharpnessScale``.

    Raises:
        ValueError: on a non-scalar loss, non-positive ``threshold``, ``max_alpha``
            or ``learning_rate``, a negative ``magnitude_offset``, or counts below 1.

    References:
        Jiang, Neyshabur, Mobahi, Krishnan, Bengio (2020), "Fantastic
        Generalization Measures and Where to Find Them", ICLR, §C (``sharpness``,
        ``sharpness.mag``). Keskar et al. (2017), ICLR, Metric 2.1.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)  # max = a + a^2 / 2 per unit w
        >>> result = sharpness_alpha(
        ...     loss_fn, jnp.ones(1), 0.5 * 0.21, key=jax.random.key(0)
        ... )
        >>> round(float(result.value), 6)  # alpha + alpha^2 / 2 = 0.105
        0.1
    """
    call = "sharpness_alpha"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    check_real(call, "threshold", threshold, lower=0.0, lower_open=True)
    check_real(call, "max_alpha", max_alpha, lower=0.0, lower_open=True)
    check_real(call, "learning_rate", learning_rate, lower=0.0, lower_open=True)
    if magnitude_offset is not None:
        check_real(call, "magnitude_offset", magnitude_offset, lower=0.0)
    num_bisections = check_int(call, "num_bisections", num_bisections, 1)
    num_restarts = check_int(call, "num_restarts", num_restarts, 1)
    num_steps = check_int(call, "num_steps", num_steps, 1)
    return _sharpness_alpha(
        loss_fn,
        w,
        jnp.asarray(threshold),
        key,
        None if magnitude_offset is None else jnp.asarray(magnitude_offset),
        jnp.asarray(max_alpha),
        num_bisections,
        num_restarts,
        num_steps,
        jnp.asarray(learning_rate),
    )


@eqx.filter_jit
def _sharpness_alpha(
    loss_fn,
    w,
    threshold,
    key,
    magnitude_offset,
    max_alpha,
    num_bisections,
    num_restarts,
    num_steps,
    learning_rate,
):
    x0, _, flat_loss = flatten_loss(loss_fn, w)
    loss = flat_loss(x0)
    if magnitude_offset is None:
        widths = jnp.ones_like(x0)
    else:
        widths = jnp.abs(x0) + magnitude_offset

    def passes(alpha):
        _, maximum = box_ascent(
            flat_loss,
            x0,
            alpha * widths,
            key,
            num_restarts,
            num_steps,
            learning_rate,
        )
        return maximum - loss <= threshold

    top = jnp.asarray(max_alpha, x0.dtype)
    return SharpnessScale(*bisect_largest(passes, top, num_bisections), "lower_bound")
