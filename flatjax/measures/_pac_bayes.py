r"""Average-case sharpness under Gaussian perturbations (PAC-Bayes flatness)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from .._checks import (
    check_int,
    check_key,
    check_real,
    check_same_structure,
    check_scalar_loss,
)
from ..optim import tree_norm
from ._base import (
    Estimate,
    bisect_largest,
    flatten_loss,
    map_probes,
    mean_and_stderr,
    resolve_probe_batch,
)


def _perturbation_scale(x0: Array, magnitude_offset) -> Array:
    r"""Per-coordinate noise scale: 1, or $|w_i| + \epsilon$ (magnitude-aware)."""
    if magnitude_offset is None:
        return jnp.ones_like(x0)
    return jnp.abs(x0) + magnitude_offset


def _antithetic_increases(
    flat_loss: Callable[[Array], Array],
    x0: Float[Array, " d"],
    loss: Float[Array, ""],
    sigma: Float[Array, ""],
    scale: Float[Array, " d"],
    key: PRNGKeyArray,
    num_samples: int,
    probe_batch: int,
) -> Float[Array, " m"]:
    r"""$\frac12[L(w+\sigma c\odot u_i) + L(w-\sigma c\odot u_i)] - L(w)$, in chunks.

    Sample $i$ draws $u_i\sim N(0, I)$ from ``fold_in(key, i)``: the same draws at
    every $\sigma$ (common random numbers) and for every chunk size.
    """

    def sample(sample_key):
        shift = sigma * scale * jax.random.normal(sample_key, x0.shape, x0.dtype)
        return 0.5 * (flat_loss(x0 + shift) + flat_loss(x0 - shift)) - loss

    return map_probes(sample, key, num_samples, probe_batch)


def _check_common(call, loss_fn, w, key, num_samples, probe_batch, magnitude_offset):
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    num_samples = check_int(call, "num_samples", num_samples, 1)
    if magnitude_offset is not None:
        check_real(call, "magnitude_offset", magnitude_offset, lower=0.0)
    return num_samples, resolve_probe_batch(call, probe_batch, num_samples, w)


@eqx.filter_jit
def _expected_sharpness(
    loss_fn, w, sigma, key, num_samples, probe_batch, magnitude_offset
):
    x0, _, flat_loss = flatten_loss(loss_fn, w)
    scale = _perturbation_scale(x0, magnitude_offset)
    sigma = jnp.asarray(sigma, x0.dtype)
    increases = _antithetic_increases(
        flat_loss, x0, flat_loss(x0), sigma, scale, key, num_samples, probe_batch
    )
    return Estimate(*mean_and_stderr(increases))


def expected_sharpness(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    sigma: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    num_samples: int = 100,
    magnitude_offset: Float[Array, ""] | float | None = None,
    probe_batch: int | None = None,
) -> Estimate:
    r"""PAC-Bayes expected sharpness $\mathbb{E}_{u\sim N(0,\sigma^2I)}L(w+u) - L(w)$.

    The quantity a PAC-Bayes bound with an isotropic Gaussian posterior centred at
    $w$ pays for (Neyshabur et al. 2017, §3; Dziugaite & Roy 2017). Estimated with
    ``num_samples`` antithetic pairs $\pm\sigma u_i$, $u_i\sim N(0, I)$:
    $\frac12[L(w+\sigma u_i) + L(w-\sigma u_i)] - L(w)$ is unbiased and cancels the
    first-order term $\sigma\nabla L^\top u_i$ exactly, so for a quadratic
    $\frac12 w^\top A w$ each sample is $\frac12\sigma^2 u_i^\top A u_i$, with mean
    $\frac12\sigma^2\,\mathrm{tr}A$ at any $w$. Costs $2m$ loss evaluations,
    ``probe_batch`` pairs at a time (memory independent of $m$).

    Magnitude-aware (``magnitude_offset`` $=\epsilon$ given): the perturbation is
    $u_i\sim N(0, \sigma^2(|w_i|+\epsilon)^2)$, coordinate by coordinate, the
    posterior of Jiang et al.'s ``pacbayes.mag`` measures (2019, §C); for a
    quadratic the expectation is $\frac12\sigma^2\sum_i a_{ii}(|w_i|+\epsilon)^2$.
    With $\sigma = \rho$ and $\epsilon = \eta$ this is the average-case adaptive
    sharpness (``average_adaptive_sharpness``).

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        sigma: the perturbation scale $\sigma > 0$ (may be traced).
        key: PRNG key for the perturbations.
        num_samples: number of antithetic pairs $m \ge 1$.
        magnitude_offset: $\epsilon \ge 0$ for the magnitude-aware perturbation;
            None (default) for the isotropic one.
        probe_batch: pairs per chunk, $\ge 1$ (static; default from
            ``DEFAULT_PROBE_MEMORY``).

    Returns:
        An ``Estimate`` (standard error from the $m$ independent pairs).

    Raises:
        ValueError: on a non-scalar loss, $\sigma \le 0$, ``num_samples < 1`` or a
            negative ``magnitude_offset``.

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
    num_samples, probe_batch = _check_common(
        call, loss_fn, w, key, num_samples, probe_batch, magnitude_offset
    )
    check_real(call, "sigma", sigma, lower=0.0, lower_open=True)
    return _expected_sharpness(
        loss_fn,
        w,
        jnp.asarray(sigma),
        key,
        num_samples,
        probe_batch,
        None if magnitude_offset is None else jnp.asarray(magnitude_offset),
    )


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
    magnitude_offset: Float[Array, ""] | float | None = None,
    probe_batch: int | None = None,
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

    With ``magnitude_offset`` $=\epsilon$ the perturbation is magnitude-aware,
    $N(0,\sigma^2(|w_i|+\epsilon)^2)$ per coordinate: $\sigma'$ is then Jiang et
    al.'s ``pacbayes.mag`` scale (their ``pacbayes.mag.flatness`` is
    $1/\sigma'^2$), invariant to rescaling a ReLU network's layers when
    $\epsilon = 0$. For a quadratic,
    $\sigma' = \sqrt{2\tau/\sum_i a_{ii}(|w_i|+\epsilon)^2}$ up to the Monte Carlo
    error.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        threshold: the allowed increase $\tau > 0$.
        key: PRNG key for the perturbations.
        num_samples: antithetic pairs per evaluation, $\ge 1$.
        max_sigma: the upper end of the search, $> 0$.
        num_bisections: bisection steps (static, $\ge 1$).
        magnitude_offset: $\epsilon \ge 0$ for the magnitude-aware perturbation;
            None (default) for the isotropic one.
        probe_batch: pairs per chunk, $\ge 1$ (static; default from
            ``DEFAULT_PROBE_MEMORY``).

    Returns:
        A ``PerturbationScale``.

    Raises:
        ValueError: on a non-scalar loss, a non-positive ``threshold`` or
            ``max_sigma``, counts below 1, or a negative ``magnitude_offset``.

    References:
        Jiang, Neyshabur, Mobahi, Krishnan, Bengio (2020), "Fantastic
        Generalization Measures and Where to Find Them", ICLR (the PAC-Bayes
        measures, §C, magnitude-aware included). Neyshabur et al. (2017), NeurIPS.
        Dziugaite & Roy (2017), UAI.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)
        >>> result = pac_bayes_sigma(loss_fn, jnp.zeros(4), 0.02, key=jax.random.key(0))
        >>> bool(0.05 < result.value < 0.15)  # sqrt(2 * 0.02 / tr A) = 0.1
        True
    """
    call = "pac_bayes_sigma"
    num_samples, probe_batch = _check_common(
        call, loss_fn, w, key, num_samples, probe_batch, magnitude_offset
    )
    check_real(call, "threshold", threshold, lower=0.0, lower_open=True)
    check_real(call, "max_sigma", max_sigma, lower=0.0, lower_open=True)
    num_bisections = check_int(call, "num_bisections", num_bisections, 1)
    return _pac_bayes_sigma(
        loss_fn,
        w,
        jnp.asarray(threshold),
        key,
        num_samples,
        jnp.asarray(max_sigma),
        num_bisections,
        None if magnitude_offset is None else jnp.asarray(magnitude_offset),
        probe_batch,
    )


@eqx.filter_jit
def _pac_bayes_sigma(
    loss_fn,
    w,
    threshold,
    key,
    num_samples,
    max_sigma,
    num_bisections,
    magnitude_offset,
    probe_batch,
):
    x0, _, flat_loss = flatten_loss(loss_fn, w)
    loss = flat_loss(x0)
    scale = _perturbation_scale(x0, magnitude_offset)

    def passes(sigma):
        increases = _antithetic_increases(
            flat_loss, x0, loss, sigma, scale, key, num_samples, probe_batch
        )
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
    init: PyTree | None = None,
    probe_batch: int | None = None,
) -> PerturbationRatio:
    r"""The ratio $\|w - w_0\|^2/\sigma'^2$ of parameter distance to perturbation scale.

    $\sigma'$ is the largest Gaussian perturbation scale keeping the expected loss
    increase below $\tau$ (``pac_bayes_sigma``). The ratio is twice the KL
    divergence of the posterior $N(w,\sigma'^2I)$ from the prior $N(0,\sigma'^2 I)$
    in the PAC-Bayes bound, and one of the measures that correlated best with
    generalization in Jiang et al. (2020). For a quadratic
    $\frac12w^\top Aw$ it is $\|w\|^2\,\mathrm{tr}A/(2\tau)$. When $\sigma'$ is not
    bracketed (``sigma.bracketed`` false) the value is an upper bound.

    $w_0$ is the prior's centre: 0 by default (Jiang et al.'s
    ``pacbayes.orig``-style ratio), or the initialization ``init`` (the
    init-centred ``pacbayes.init`` of Jiang et al. 2019 and Nagarajan & Kolter
    2019, which is what a data-independent prior at the random initialization
    pays).

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        threshold: the allowed increase $\tau > 0$.
        key: PRNG key for the perturbations.
        num_samples: antithetic pairs per evaluation, $\ge 1$.
        max_sigma: the upper end of the search, $> 0$.
        num_bisections: bisection steps (static, $\ge 1$).
        init: $w_0$, structured like ``w``; None for $w_0 = 0$.
        probe_batch: pairs per chunk, $\ge 1$ (static; default from
            ``DEFAULT_PROBE_MEMORY``).

    Returns:
        A ``PerturbationRatio``.

    Raises:
        ValueError: as ``pac_bayes_sigma``, or an ``init`` not structured like
            ``w``.

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
        probe_batch=probe_batch,
    )
    distance = distance_from_initialization(
        w, jax.tree_util.tree_map(jnp.zeros_like, w) if init is None else init
    )
    return PerturbationRatio(jnp.square(distance / sigma.value), sigma)


def distance_from_initialization(w: PyTree, init: PyTree) -> Float[Array, ""]:
    r"""The distance $\|w - w_0\|$ travelled from the initialization.

    A measure of Nagarajan & Kolter (2019) and Jiang et al. (2019)
    (``dist.init``); unlike $\|w\|$ it does not charge a network for a large
    random initialization.

    Args:
        w: the parameters.
        init: $w_0$, structured like ``w``.

    Returns:
        The Euclidean distance over all leaves, a scalar.

    Raises:
        ValueError: if ``init`` is not structured like ``w``.

    References:
        Nagarajan & Kolter (2019), "Generalization in Deep Networks: The Role of
        Distance from Initialization", arXiv 1901.01672. Jiang et al. (2020),
        "Fantastic Generalization Measures and Where to Find Them", ICLR.

    Examples:
        >>> import jax.numpy as jnp
        >>> float(distance_from_initialization(jnp.array([4.0, 1.0]), jnp.ones(2)))
        3.0
    """
    check_same_structure("distance_from_initialization", "init", init, w)
    return tree_norm(jax.tree_util.tree_map(jnp.subtract, w, init))


class InitPACBayesBound(NamedTuple):
    r"""Jiang et al.'s init-centred PAC-Bayes measure and its ingredients.

    Attributes:
        value: $\|w-w_0\|^2/(4\sigma'^2) + \log(m/\sigma') + 10$.
        distance: $\|w - w_0\|$.
        sigma: the ``PerturbationScale`` behind it.
    """

    value: Float[Array, ""]
    distance: Float[Array, ""]
    sigma: PerturbationScale


def pac_bayes_init_bound(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    init: PyTree,
    threshold: Float[Array, ""] | float,
    num_examples: int,
    *,
    key: PRNGKeyArray,
    num_samples: int = 100,
    max_sigma: Float[Array, ""] | float = 1.0,
    num_bisections: int = 40,
    magnitude_offset: Float[Array, ""] | float | None = None,
    probe_batch: int | None = None,
) -> InitPACBayesBound:
    r"""Jiang et al.'s init-centred PAC-Bayes measure (``pacbayes.init``).

    $\frac{\|w-w_0\|^2}{4\sigma'^2} + \log\frac m{\sigma'} + 10$.
    The KL term of a PAC-Bayes bound with prior $N(w_0,\sigma'^2I)$ at the
    initialization and posterior $N(w,\sigma'^2I)$, in the form Jiang et al.
    (2019, ``pacbayes.init``) rank networks by; $\sigma'$ is the largest scale whose
    expected sharpness stays below ``threshold`` (``pac_bayes_sigma``), $m$ the
    number of training examples. For a quadratic $\frac12w^\top Aw$,
    $\sigma' = \sqrt{2\tau/\mathrm{tr}A}$ up to the Monte Carlo error.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        init: $w_0$, structured like ``w``.
        threshold: the allowed increase $\tau > 0$.
        num_examples: $m \ge 1$.
        key: PRNG key for the perturbations.
        num_samples: antithetic pairs per evaluation, $\ge 1$.
        max_sigma: the upper end of the search, $> 0$.
        num_bisections: bisection steps (static, $\ge 1$).
        magnitude_offset: as in ``pac_bayes_sigma``.
        probe_batch: pairs per chunk (static; default from ``DEFAULT_PROBE_MEMORY``).

    Returns:
        An ``InitPACBayesBound``.

    Raises:
        ValueError: as ``pac_bayes_sigma``, an ``init`` not structured like ``w``,
            or ``num_examples < 1``.

    References:
        Jiang, Neyshabur, Mobahi, Krishnan, Bengio (2020), "Fantastic
        Generalization Measures and Where to Find Them", ICLR (``pacbayes.init``,
        §C). Nagarajan & Kolter (2019), arXiv 1901.01672. Dziugaite & Roy (2017),
        UAI.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)  # sigma' ~ sqrt(2 tau / 4)
        >>> bound = pac_bayes_init_bound(
        ...     loss_fn, jnp.ones(4), jnp.zeros(4), 0.02, 100, key=jax.random.key(0)
        ... )
        >>> float(bound.distance)
        2.0
    """
    call = "pac_bayes_init_bound"
    num_examples = check_int(call, "num_examples", num_examples, 1)
    check_same_structure(call, "init", init, w)
    sigma = pac_bayes_sigma(
        loss_fn,
        w,
        threshold,
        key=key,
        num_samples=num_samples,
        max_sigma=max_sigma,
        num_bisections=num_bisections,
        magnitude_offset=magnitude_offset,
        probe_batch=probe_batch,
    )
    distance = distance_from_initialization(w, init)
    value = (
        jnp.square(distance) / (4.0 * jnp.square(sigma.value))
        + jnp.log(num_examples / sigma.value)
        + 10.0
    )
    return InitPACBayesBound(value, distance, sigma)
