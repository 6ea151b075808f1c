r"""The Hessian's spectral density by stochastic Lanczos quadrature, and its plot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import check_int, check_key, check_real, check_scalar_loss
from ._base import Estimate, hessian_vector_product, mean_and_stderr
from ._hessian import lanczos_tridiagonal


class SpectralDensity(NamedTuple):
    r"""Gauss quadrature nodes and weights of the Hessian's spectral density.

    $\phi(t) = \frac1d\sum_j\delta(t-\lambda_j)$ is approximated, for each start
    vector $l$, by the $m$-point Gauss quadrature rule of the Lanczos process:
    nodes $\theta^{(l)}_i$ (Ritz values) and weights $\tau^{(l)}_i$ (squared first
    components of the Ritz vectors, summing to 1).

    Attributes:
        nodes: $\theta^{(l)}_i$, shape ``(n_v, m)``.
        weights: $\tau^{(l)}_i$, shape ``(n_v, m)``; each row sums to 1.
    """

    nodes: Float[Array, "n_v m"]
    weights: Float[Array, "n_v m"]

    def moment(self, power: int) -> Estimate:
        r"""$\int t^p\,\phi(t)\,dt \approx \mathrm{tr}(H^p)/d$, with its standard error.

        Each start gives $\sum_i\tau_i\theta_i^p = \hat v^\top H^p \hat v$ exactly for
        $p \le 2m-1$ (Gauss quadrature), an unbiased estimate of
        $\mathrm{tr}(H^p)/d$ for a Rademacher or normalized Gaussian start; the
        standard error is from the spread over the $n_v$ starts.
        """
        samples = jnp.sum(self.weights * self.nodes**power, axis=1)
        return Estimate(*mean_and_stderr(samples))

    def density(
        self, grid: Float[Array, " g"], sigma: Float[Array, ""] | float
    ) -> Float[Array, " g"]:
        r"""The Gaussian-broadened density at each point $t$ of ``grid``.

        $\phi_\sigma(t) = \frac1{n_v}\sum_{l,i}\tau_i^{(l)}g_\sigma(t-\theta_i^{(l)})$,
        $g_\sigma$ the centred normal density of standard deviation $\sigma$.
        It integrates to 1, its mean is the first moment, and its second moment
        is that of the quadrature plus $\sigma^2$ (the broadening's variance).
        """
        grid = jnp.asarray(grid)
        gaps = grid[:, None, None] - self.nodes[None]
        kernel = jnp.exp(-0.5 * jnp.square(gaps / sigma)) / (
            sigma * jnp.sqrt(2.0 * jnp.pi)
        )
        return jnp.mean(jnp.sum(self.weights[None] * kernel, axis=2), axis=1)


def spectral_density(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    *,
    key: PRNGKeyArray,
    num_starts: int = 10,
    num_iterations: int | None = None,
    start: Literal["rademacher", "gaussian"] = "rademacher",
) -> SpectralDensity:
    r"""Spectral density of $H = \nabla^2 L(w)$ by stochastic Lanczos quadrature.

    For each of ``num_starts`` $= n_v$ random unit start vectors $\hat v_l$,
    ``num_iterations`` $= m$ steps of Lanczos (full reorthogonalization, as in
    ``hessian_eigenvalues``) give the tridiagonal $T_l = Y\Theta Y^\top$; its
    eigenvalues $\theta^{(l)}_i$ and the squares $\tau^{(l)}_i = Y_{1i}^2$ of the first
    components of its eigenvectors are the nodes and weights of the Gauss quadrature
    rule for the measure $\sum_j (\hat v_l^\top u_j)^2\delta_{\lambda_j}$, whose
    average over starts is the spectral density $\frac1d\sum_j\delta_{\lambda_j}$ in
    expectation (Ubaru, Chen, Saad 2017; Ghorbani, Krishnan, Xiao 2019; PyHessian's
    ``density``). ``SpectralDensity.density`` smooths it with a Gaussian of width
    $\sigma$; ``plot_spectral_density`` draws it. Isolated outlying eigenvalues (the
    top of a network's spectrum) appear as Ritz values of every start.

    Cost: $n_v m$ Hessian-vector products; the starts run one after another
    (``jax.lax.map``), so memory is one Lanczos basis, $O(md)$. Compiled once per
    loss function object and shapes.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the parameters.
        key: PRNG key for the start vectors.
        num_starts: $n_v \ge 1$ (standard errors of moments need $\ge 2$).
        num_iterations: Lanczos steps $1 \le m \le d$ per start (static); default
            $\min(d, 80)$.
        start: ``"rademacher"`` (entries $\pm1$, normalized: exact norm, lower
            variance) or ``"gaussian"``.

    Returns:
        A ``SpectralDensity``.

    Raises:
        ValueError: on a non-scalar loss, counts out of range, or an unknown
            ``start``.

    References:
        Ubaru, Chen, Saad (2017), "Fast Estimation of tr(f(A)) via Stochastic
        Lanczos Quadrature", SIAM J. Matrix Anal. Appl. 38(4). Ghorbani, Krishnan,
        Xiao (2019), "An Investigation into Neural Net Optimization via Hessian
        Eigenvalue Density", ICML. Yao, Gholami, Keutzer, Mahoney (2020),
        "PyHessian", IEEE BigData.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(jnp.array([4.0, 1.0, 1.0, 1.0]) * w**2)
        >>> result = spectral_density(loss_fn, jnp.zeros(4), key=jax.random.key(0))
        >>> round(float(result.moment(1).value), 10)  # tr H / d, exact for Rademacher
        1.75
    """
    call = "spectral_density"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    num_starts = check_int(call, "num_starts", num_starts, 1)
    d = ravel_pytree(w)[0].shape[0]
    if num_iterations is None:
        num_iterations = min(d, 80)
    num_iterations = check_int(call, "num_iterations", num_iterations, 1)
    if num_iterations > d:
        raise ValueError(
            f"`{call}(num_iterations=...)` must be <= d = {d}, got {num_iterations}"
        )
    if start not in ("rademacher", "gaussian"):
        raise ValueError(
            f"`{call}(start=...)` must be 'rademacher' or 'gaussian', got {start!r}"
        )
    return _density(loss_fn, w, key, num_starts, num_iterations, start)


@eqx.filter_jit
def _density(loss_fn, w, key, num_starts, num_iterations, start):
    x0, _, hvp = hessian_vector_product(loss_fn, w)
    draw = jax.random.rademacher if start == "rademacher" else jax.random.normal

    def one(start_key):
        vector_key, restart_key = jax.random.split(start_key)
        vector = draw(vector_key, x0.shape, x0.dtype)
        _, tridiagonal, _ = lanczos_tridiagonal(
            hvp, vector, num_iterations, restart_key
        )
        nodes, coordinates = jnp.linalg.eigh(tridiagonal)
        return nodes, jnp.square(coordinates[0])

    nodes, weights = jax.lax.map(one, jax.random.split(key, num_starts))
    return SpectralDensity(nodes, weights)


def plot_spectral_density(
    density: SpectralDensity,
    *,
    sigma: float | None = None,
    num_points: int = 1000,
    log_scale: bool = True,
    ax: Any = None,
) -> Any:
    r"""Plot the Gaussian-broadened spectral density (matplotlib); returns the figure.

    Draws $\phi_\sigma(t)$ of ``SpectralDensity.density`` on ``num_points`` points
    spanning the Ritz values plus $5\sigma$ either side, on a logarithmic density
    axis by default (as Ghorbani et al. 2019 and PyHessian plot it: the bulk near
    zero and the outliers differ by orders of magnitude).

    Args:
        density: a ``SpectralDensity``.
        sigma: the broadening width $> 0$; default 1% of the Ritz values' range (or
            1e-3 when they coincide).
        num_points: grid points, $\ge 2$.
        log_scale: logarithmic density axis.
        ax: a matplotlib ``Axes`` to draw on; default a new figure.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: on a non-positive ``sigma`` or ``num_points < 2``.

    References:
        Ghorbani, Krishnan, Xiao (2019), ICML, Figure 1. Yao et al. (2020),
        "PyHessian".

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(jnp.arange(1.0, 9.0) * w**2)
        >>> result = spectral_density(loss_fn, jnp.zeros(8), key=jax.random.key(0))
        >>> figure = plot_spectral_density(result)
        >>> figure.axes[0].get_xlabel()
        'eigenvalue'
    """
    import matplotlib.pyplot as plt

    call = "plot_spectral_density"
    num_points = check_int(call, "num_points", num_points, 2)
    low = float(jnp.min(density.nodes))
    high = float(jnp.max(density.nodes))
    if sigma is None:
        sigma = 0.01 * (high - low) if high > low else 1e-3
    check_real(call, "sigma", sigma, lower=0.0, lower_open=True)
    grid = jnp.linspace(low - 5 * sigma, high + 5 * sigma, num_points)
    values = density.density(grid, sigma)
    if ax is None:
        figure, ax = plt.subplots(figsize=(5.2, 3.6), constrained_layout=True)
    else:
        figure = ax.figure
    ax.plot(grid, values)
    if log_scale:
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(float(jnp.max(values)) * 1e-8, 1e-300))
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel(f"density (Gaussian width {sigma:.3g})")
    return figure
