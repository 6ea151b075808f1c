r"""Local entropy (Entropy-SGD) by Langevin sampling and thermodynamic integration."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from flatjax._checks import check_int, check_real

from .._checks import check_key, check_scalar_loss
from ._base import flatten_loss, mean_and_stderr


class LocalEntropy(NamedTuple):
    r"""Negative local entropy $-F(w;\gamma)$ and its gradient, with standard errors.

    Attributes:
        value: $-F(w;\gamma)$, normalizing constant included (see
            ``local_entropy``); lower is flatter.
        stderr: standard error of ``value`` (Monte Carlo only; the Langevin
            discretization bias and the quadrature error are not included).
        gradient: $\nabla_w(-F) = \gamma(w - \mathbb{E}[w'])$, structured like $w$.
        gradient_stderr: the standard error of each entry of ``gradient``.
        mean: $\mathbb{E}[w']$ under the Gibbs measure, structured like $w$.
    """

    value: Float[Array, ""]
    stderr: Float[Array, ""]
    gradient: PyTree
    gradient_stderr: PyTree
    mean: PyTree


def local_entropy(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    w: PyTree,
    gamma: Float[Array, ""] | float,
    *,
    key: PRNGKeyArray,
    num_chains: int = 16,
    num_steps: int = 2000,
    num_burnin: int | None = None,
    step_size: Float[Array, ""] | float = 1e-2,
    num_nodes: int = 8,
) -> LocalEntropy:
    r"""Local entropy $F(w;\gamma) = \log\int e^{-L(w') - \frac\gamma2\|w-w'\|^2}dw'$.

    The local entropy of Chaudhari et al. (2017) at unit temperature; Entropy-SGD
    descends $-F$, which is small where low loss fills a wide neighbourhood of $w$.
    Both outputs come from unadjusted Langevin (ULA, full-batch SGLD) chains
    $w'\leftarrow w' - h\nabla U_\lambda(w') + \sqrt{2h}\,\xi$ on
    $U_\lambda(w') = \lambda L(w') + \frac\gamma2\|w'-w\|^2$, started at $w$:

    - the gradient, $\nabla_w(-F) = \gamma(w - \mathbb{E}_{\lambda=1}[w'])$
      (the Entropy-SGD gradient of Chaudhari et al. 2017), from chains at
      $\lambda = 1$, the Gibbs measure itself;
    - the value, by thermodynamic integration (path sampling, Gelman & Meng 1998):
      $\frac{d}{d\lambda}\log Z_\lambda = -\mathbb{E}_\lambda[L]$ and
      $Z_0 = (2\pi/\gamma)^{d/2}$, so

      $$-F(w;\gamma) = \int_0^1 \mathbb{E}_{\lambda}[L(w')]\,d\lambda
      - \tfrac d2\log\tfrac{2\pi}{\gamma},$$

      the integral by ``num_nodes``-point Gauss-Legendre quadrature, each node with
      its own chains. The value is therefore the full $-F$, constant included; for
      $\frac12w^\top Aw$ it is $\frac12\log\det(A+\gamma I) - \frac d2\log 2\pi -
      \frac{\gamma^2}2 w^\top(A+\gamma I)^{-1}w + \frac\gamma2\|w\|^2$.

    Each chain averages its last ``num_steps - num_burnin`` states; standard errors
    come from the spread of the ``num_chains`` independent chain averages, which
    accounts for autocorrelation within a chain. ULA has an $O(h)$ bias (for a
    Gaussian target of precision $p$ its variance is $1/(p(1-hp/2))$) and needs
    $h < 2/(\beta+\gamma)$ for a $\beta$-smooth loss; a diverging chain gives NaN,
    never an exception. Sampling the full-batch loss: for a minibatch (SGLD
    proper) pass a loss of the minibatch.

    Args:
        loss_fn: $L$, a scalar function of the parameter pytree.
        w: the centre $w$ (parameters).
        gamma: the coupling $\gamma > 0$ (scope $1/\gamma$).
        key: PRNG key for the chains.
        num_chains: independent chains per quadrature node, $\ge 1$ (standard
            errors need $\ge 2$).
        num_steps: Langevin steps per chain, $\ge 1$.
        num_burnin: steps discarded before averaging, $0 \le$ ``num_burnin``
            $<$ ``num_steps``; default ``num_steps // 2``.
        step_size: the Langevin step $h > 0$.
        num_nodes: Gauss-Legendre nodes for the integral over $\lambda$, $\ge 1$.

    Returns:
        A ``LocalEntropy``.

    Raises:
        ValueError: on a non-scalar loss, non-positive ``gamma`` or ``step_size``,
            or counts out of range.

    References:
        Chaudhari, Choromanska, Soatto, LeCun, Baldassi, Borgs, Chayes, Sagun,
        Zecchina (2017), "Entropy-SGD: Biasing Gradient Descent Into Wide Valleys",
        ICLR (J. Stat. Mech. 2019). Welling & Teh (2011), "Bayesian
        Learning via Stochastic Gradient Langevin Dynamics", ICML. Gelman & Meng
        (1998), "Simulating normalizing constants: from importance sampling to
        bridge sampling to path sampling", Statistical Science 13(2).

    Examples:
        >>> import math, jax, jax.numpy as jnp
        >>> loss_fn = lambda w: 0.5 * jnp.sum(w**2)  # A = I
        >>> result = local_entropy(loss_fn, jnp.zeros(1), 1.0, key=jax.random.key(0))
        >>> exact = 0.5 * math.log(2.0) - 0.5 * math.log(2 * math.pi)
        >>> bool(abs(result.value - exact) < 0.05)
        True
    """
    call = "local_entropy"
    check_scalar_loss(call, "loss_fn", loss_fn, w)
    check_key(call, key)
    check_real(call, "gamma", gamma, lower=0.0, lower_open=True)
    check_real(call, "step_size", step_size, lower=0.0, lower_open=True)
    num_chains = check_int(call, "num_chains", num_chains, 1)
    num_steps = check_int(call, "num_steps", num_steps, 1)
    num_nodes = check_int(call, "num_nodes", num_nodes, 1)
    if num_burnin is None:
        num_burnin = num_steps // 2
    num_burnin = check_int(call, "num_burnin", num_burnin, 0)
    if num_burnin >= num_steps:
        raise ValueError(
            f"`{call}(num_burnin=...)` must be < num_steps = {num_steps}, got "
            f"{num_burnin}"
        )
    x0, unravel, flat_loss = flatten_loss(loss_fn, w)
    d, dtype = x0.shape[0], x0.dtype
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    couplings = jnp.asarray(np.append(0.5 * (nodes + 1.0), 1.0), dtype)
    weights = jnp.asarray(0.5 * weights, dtype)
    value_and_grad = jax.value_and_grad(flat_loss)
    noise_scale = jnp.sqrt(2.0 * step_size)
    num_kept = num_steps - num_burnin

    def chain(coupling, chain_key):
        def step(carry, inputs):
            x, loss_sum, x_sum = carry
            t, step_key = inputs
            loss, grad = value_and_grad(x)
            keep = t >= num_burnin
            loss_sum = loss_sum + jnp.where(keep, loss, 0.0)
            x_sum = x_sum + jnp.where(keep, x, 0.0)
            drift = coupling * grad + gamma * (x - x0)
            noise = jax.random.normal(step_key, (d,), dtype)
            return (x - step_size * drift + noise_scale * noise, loss_sum, x_sum), None

        inputs = (jnp.arange(num_steps), jax.random.split(chain_key, num_steps))
        initial = (x0, jnp.zeros((), dtype), jnp.zeros_like(x0))
        (_, loss_sum, x_sum), _ = jax.lax.scan(step, initial, inputs)
        return loss_sum / num_kept, x_sum / num_kept

    keys = jax.random.split(key, (num_nodes + 1, num_chains))
    chains = jax.vmap(jax.vmap(chain, in_axes=(None, 0)), in_axes=(0, 0))
    loss_means, state_means = chains(couplings, keys)
    # Chains are independent: each node's standard error is that of a mean over
    # its chains, and the quadrature adds them in quadrature.
    node_means, node_stderrs = jax.vmap(mean_and_stderr)(loss_means[:num_nodes])
    value = jnp.dot(weights, node_means) - 0.5 * d * jnp.log(2.0 * jnp.pi / gamma)
    stderr = jnp.sqrt(jnp.dot(jnp.square(weights), jnp.square(node_stderrs)))
    mean, mean_stderr = jax.vmap(mean_and_stderr, in_axes=1)(state_means[num_nodes])
    return LocalEntropy(
        value,
        stderr,
        unravel(gamma * (x0 - mean)),
        unravel(gamma * mean_stderr),
        unravel(mean),
    )
