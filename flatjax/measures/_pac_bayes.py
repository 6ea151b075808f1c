r"""Average-case sharpness under Gaussian perturbations (PAC-Bayes flatness)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from flatjax._checks import check_int, check_real
from flatjax.optim import tree_norm

from .._checks import check_key, check_scalar_loss
from ._base import Estimate, bisect_largest, flatten_loss, mean_and_stderr


def _antithetic_increases(
    flat_loss: Callable[[Array], Array],
    x0: Float[Array, " d"],
    loss: Float[Array, ""],
    sigma: Float[Array, ""],
    noise: Float[Array, "m d"],
) -> Float[Array, " m"]:
    r"""$\frac12[L(w+\sigma u_i) + L(w-\sigma u_i)] - L(w)$ for each row $u_i$."""
    shift = sigma * noise
    plus = jax.vmap(flat_loss)(x0[None, :] + shift)
    minus = jax.vmap(flat_loss)(x0[None, :] - shift)
    return 0.5 * (plus + minus) - loss


def _check_common(call, loss_fn, w, key, num_samples) -> int:
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    return check_int(call, "num_samples", num_samples, 1)


def expected_sharpness(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    sigma: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    num_samples: int = 100,
) -> Estimate:
    r"""PAC-Bayes expected sharpness $\mathbb{E}_{u\sim N(0,\sigma^2I)}L(w+u) - L(w)$.

    The quantity a PAC-Bayes bound with an isotropic Gaussian posterior centred at
    $w$ pays for (Neyshabur et al. 2017, §3; Dziugaite & Roy 2017). Estimated with
    ``num_samples`` antithetic pairs $\pm\sigma u_i$, $u_i\sim N(0, I)$:
    $\frac12[L(w+\sigma u_i) + L(w-\sigma u_i)] - L(w)$ is unbiased and cancels the
    first-order term $\sigma\nabla L^\top u_i$ exactly, so for a quadratic
    $\frac12 w^\top A w$ each sample is $\frac12\sigma^2 u_i^\top A u_i$, with mean
    $\frac12\sigma^2\,\mathrm{tr}A$ at any $w$. Costs $2m$ loss evaluations.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        sigma: the perturbation scale $\sigma > 0$ (may be traced).
        key: PRNG key for the perturbations.
        num_samples: number of antithetic pairs $m \ge 1$.

    Returns:
        An ``Estimate`` (standard error from the $m$ independent pairs).

    Raises:
        ValueError: on a non-scalar loss, $\sigma \le 0$ or ``num_samples < 1``.

    References:
        Neyshabur, Bhojanapalli, McAllester, Srebro (2017), "Exploring
        Generalization in Deep Learning", NeurIPS, §3. Dziugaite & Roy (2017),
        "Computing Nonvacuous Generalization Bounds for Deep (Stochastic) Neural
        Networks", UAI. Jiang et al. (2020), "Fantastic Generalization Measures and
        Where to Find Them", ICLR.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)  # A = I, tr A = 4
        >>> key = jax.random.key(0)
        >>> result = expected_sharpness(loss_fn, jnp.ones(4), 0.1, key=key)
        >>> bool(abs(result.value - 0.5 * 0.1**2 * 4) < 4 * result.stderr)
        True
    """
    call = "expected_sharpness"
    num_samples = _check_common(call, loss_fn, w, key, num_samples)
    check_real(call, "sigma", sigma, lower=0.0, lower_open=True)
    x0, _, flat_loss = flatten_loss(loss_fn, w)
    noise = jax.random.normal(key, (num_samples, x0.shape[0]), x0.dtype)
    increases = _antithetic_increases(flat_loss, x0, flat_loss(x0), sigma, noise)
    return Estimate(*mean_and_stderr(increases))


class PerturbationScale(NamedTuple):
    r"""The largest perturbation scale $\sigma'$ found by bisection.

    Attributes:
        value: the largest tested $\sigma$ whose estimated expected sharpness is at
            most the threshold (0 when none is).
        upper: the smallest tested $\sigma$ above it (``inf`` when even
            ``max_sigma`` passed): $\sigma'$ lies in ``[value, upper]``.
        bracketed: false when ``max_sigma`` itself passed (``value`` is then
            clipped to ``max_sigma``).
    """

    value: Float[Array, ""]
    upper: Float[Array, ""]
    bracketed: Bool[Array, ""]


def pac_bayes_sigma(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    threshold: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    num_samples: int = 100,
    max_sigma: Float[Array, ""] | float = 1.0,
    num_bisections: int = 40,
) -> PerturbationScale:
    r"""The largest $\sigma$ whose expected sharpness stays below a threshold.

    $\sigma' = \max\{\sigma : \mathbb{E}_{u\sim N(0,\sigma^2I)}L(w+u) - L(w) \le
    \tau\}$, found by bisection on $[0,$ ``max_sigma``$]$ as in Jiang et al. (2020)
    (their PAC-Bayes "sharpness" measures search $\sigma'$ the same way). The
    expectation is the antithetic estimate of ``expected_sharpness`` with the *same*
    noise draws at every $\sigma$ (common random numbers), so the bisection sees one
    deterministic function of $\sigma$; for a convex loss it is non-decreasing in
    $\sigma$ and the bisection is exact for it. The answer carries the Monte Carlo
    error of that function: for a quadratic it is
    $\sigma' = \sqrt{2\tau / \widehat{\mathrm{tr}A}}$ with
    $\widehat{\mathrm{tr}A} = \frac1m\sum_i u_i^\top A u_i$.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        threshold: the allowed increase $\tau > 0$.
        key: PRNG key for the perturbations.
        num_samples: antithetic pairs per evaluation, $\ge 1$.
        max_sigma: the upper end of the search, $> 0$.
        num_bisections: bisection steps (static, $\ge 1$).

    Returns:
        A ``PerturbationScale``.

    Raises:
        ValueError: on a non-scalar loss, a non-positive ``threshold`` or
            ``max_sigma``, or counts below 1.

    References:
        Jiang, Neyshabur, Mobahi, Krishnan, Bengio (2020), "Fantastic
        Generalization Measures and Where to Find Them", ICLR (the PAC-Bayes
        measures). Neyshabur et al. (2017), NeurIPS. Dziugaite & Roy (2017), UAI.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)
        >>> result = pac_bayes_sigma(loss_fn, jnp.zeros(4), 0.02, key=jax.random.key(0))
        >>> bool(0.05 < result.value < 0.15)  # sqrt(2 * 0.02 / tr A) = 0.1
        True
    """
    call = "pac_bayes_sigma"
    num_samples = _check_common(call, loss_fn, w, key, num_samples)
    check_real(call, "threshold", threshold, lower=0.0, lower_open=True)
    check_real(call, "max_sigma", max_sigma, lower=0.0, lower_open=True)
    num_bisections = check_int(call, "num_bisections", num_bisections, 1)
    x0, _, flat_loss = flatten_loss(loss_fn, w)
    loss = flat_loss(x0)
    noise = jax.random.normal(key, (num_samples, x0.shape[0]), x0.dtype)

    def passes(sigma):
        increases = _antithetic_increases(flat_loss, x0, loss, sigma, noise)
        return jnp.mean(increases) <= threshold

    top = jnp.asarray(max_sigma, x0.dtype)
    return PerturbationScale(*bisect_largest(passes, top, num_bisections))


class PerturbationRatio(NamedTuple):
    r"""Jiang et al.'s parameter-to-perturbation ratio $\|w\|^2/\sigma'^2$.

    Attributes:
        value: $\|w\|^2 / \sigma'^2$ (``inf`` when $\sigma' = 0$).
        sigma: the ``PerturbationScale`` behind it.
    """

    value: Float[Array, ""]
    sigma: PerturbationScale


def parameter_perturbation_ratio(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    threshold: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    num_samples: int = 100,
    max_sigma: Float[Array, ""] | float = 1.0,
    num_bisections: int = 40,
) -> PerturbationRatio:
    r"""The ratio $\|w\|^2/\sigma'^2$ of parameter norm to perturbation scale.

    $\sigma'$ is the largest Gaussian perturbation scale keeping the expected loss
    increase below $\tau$ (``pac_bayes_sigma``). The ratio is twice the KL
    divergence of the posterior $N(w,\sigma'^2I)$ from the prior $N(0,\sigma'^2 I)$
    in the PAC-Bayes bound, and one of the measures that correlated best with
    generalization in Jiang et al. (2020). For a quadratic
    $\frac12w^\top Aw$ it is $\|w\|^2\,\mathrm{tr}A/(2\tau)$. When $\sigma'$ is not
    bracketed (``sigma.bracketed`` false) the value is an upper bound.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        threshold: the allowed increase $\tau > 0$.
        key: PRNG key for the perturbations.
        num_samples: antithetic pairs per evaluation, $\ge 1$.
        max_sigma: the upper end of the search, $> 0$.
        num_bisections: bisection steps (static, $\ge 1$).

    Returns:
        A ``PerturbationRatio``.

    Raises:
        ValueError: as ``pac_bayes_sigma``.

    References:
        Jiang et al. (2020), "Fantastic Generalization Measures and Where to Find
        Them", ICLR (the PAC-Bayes "sharpness" and parameter-to-perturbation
        measures). Neyshabur et al. (2017), NeurIPS.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)
        >>> w = jnp.ones(4)
        >>> result = parameter_perturbation_ratio(
        ...     loss_fn, w, 0.02, key=jax.random.key(0), num_samples=1000
        ... )
        >>> bool(300 < result.value < 500)  # |w|^2 tr A / (2 tau) = 400
        True
    """
    sigma = pac_bayes_sigma(
        loss_fn,
        w,
        threshold,
        key=key,
        num_samples=num_samples,
        max_sigma=max_sigma,
        num_bisections=num_bisections,
    )
    return PerturbationRatio(jnp.square(tree_norm(w) / sigma.value), sigma)
