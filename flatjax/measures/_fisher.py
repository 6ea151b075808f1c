r"""Measures of the per-example gradients: empirical Fisher and gradient variance."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PyTree

from .._checks import check_examples, check_scalar_loss


def _per_example_gradients(
    call: str,
    example_loss_fn: Callable[[PyTree, PyTree], Float[Array, ""]],
    w: PyTree,
    examples: PyTree,
) -> Float[Array, "n d"]:
    r"""The matrix $G$ whose row $i$ is $\nabla_w \ell(w, z_i)$, flattened."""
    check_examples(call, "examples", examples)
    first = jax.tree_util.tree_map(lambda leaf: leaf[0], examples)
    check_scalar_loss(call, "example_loss_fn", example_loss_fn, w, first)
    x0, unravel = ravel_pytree(w)
    grad = jax.grad(lambda x, z: example_loss_fn(unravel(x), z))
    return jax.vmap(grad, in_axes=(None, 0))(x0, examples)


class EmpiricalFisher(NamedTuple):
    r"""Summaries of the empirical Fisher $\widehat F = \frac1n\sum_i g_i g_i^\top$.

    Attributes:
        trace: $\mathrm{tr}\,\widehat F = \frac1n\sum_i\|g_i\|^2$ (exact).
        top_eigenvalue: $\lambda_{\max}(\widehat F) = \sigma_{\max}(G)^2/n$ (exact, from
            the singular values of the $n\times d$ matrix of gradients $G$).
    """

    trace: Float[Array, ""]
    top_eigenvalue: Float[Array, ""]


def empirical_fisher(
    example_loss_fn: Callable[[PyTree, PyTree], Float[Array, ""]],
    w: PyTree,
    examples: PyTree,
) -> EmpiricalFisher:
    r"""Trace and top eigenvalue of the empirical Fisher matrix at $w$.

    $\widehat F(w) = \frac1n\sum_{i=1}^n \nabla\ell_i(w)\nabla\ell_i(w)^\top$ with
    $\ell_i = \ell(w, z_i)$: the uncentred second moment of the per-example gradients
    (the "empirical Fisher" of Kunstner et al. 2019, which is not the Fisher
    information in general). Wu et al. relate its alignment with the Hessian to the
    flatness of the minima SGD selects. The $n\times d$ matrix of per-example
    gradients (``jax.vmap`` of ``jax.grad``) is formed, never the $d\times d$ matrix;
    pass a batch of examples that fits.

    Args:
        example_loss_fn: $\ell(w, z)$, the loss of one example.
        w: the parameters.
        examples: a pytree of arrays whose leading axis indexes the $n \ge 1$
            examples $z_i$.

    Returns:
        An ``EmpiricalFisher``.

    Raises:
        ValueError: if ``example_loss_fn`` is not scalar-valued or ``examples`` has
            no examples or inconsistent leading axes.

    References:
        Kunstner, Hennig, Balles (2019), "Limitations of the empirical Fisher
        approximation for natural gradient descent", NeurIPS. Wu, Wang, Su (2022),
        "The alignment property of SGD noise and how it helps select flat minima",
        NeurIPS. Wu & Su (2023), ICML.

    Examples:
        >>> import jax.numpy as jnp
        >>> loss = lambda w, z: 0.5 * (jnp.dot(z[:2], w) - z[2]) ** 2
        >>> examples = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> fisher = empirical_fisher(loss, jnp.array([2.0, 1.0]), examples)
        >>> float(fisher.trace), float(fisher.top_eigenvalue)  # diag(4, 1) / 2
        (2.5, 2.0)
    """
    gradients = _per_example_gradients("empirical_fisher", example_loss_fn, w, examples)
    n = gradients.shape[0]
    trace = jnp.sum(jnp.square(gradients)) / n
    singular_values = jnp.linalg.svd(gradients, compute_uv=False)
    return EmpiricalFisher(trace, jnp.square(singular_values[0]) / n)


def gradient_variance(
    example_loss_fn: Callable[[PyTree, PyTree], Float[Array, ""]],
    w: PyTree,
    examples: PyTree,
) -> Float[Array, ""]:
    r"""Per-example gradient variance $\frac1n\sum_i\|\nabla\ell_i-\nabla L\|^2$.

    $L = \frac1n\sum_i \ell_i$ is the empirical risk of the ``examples``; the result
    is exact (no sampling) and equals $\mathrm{tr}\,\widehat F - \|\nabla L\|^2$. It is
    $n$ times the variance of a one-example stochastic gradient about the full
    gradient, the gradient-noise measure of Jiang et al. (2020).

    Args:
        example_loss_fn: $\ell(w, z)$, the loss of one example.
        w: the parameters.
        examples: a pytree of arrays whose leading axis indexes the $n \ge 1$
            examples.

    Returns:
        The gradient variance, a scalar.

    Raises:
        ValueError: as ``empirical_fisher``.

    References:
        Jiang, Neyshabur, Mobahi, Krishnan, Bengio (2020), "Fantastic
        Generalization Measures and Where to Find Them", ICLR (gradient noise at
        the final point, among the optimization-based measures).

    Examples:
        >>> import jax.numpy as jnp
        >>> loss = lambda w, z: 0.5 * (jnp.dot(z[:2], w) - z[2]) ** 2
        >>> examples = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> float(gradient_variance(loss, jnp.array([2.0, 1.0]), examples))
        1.25
    """
    gradients = _per_example_gradients(
        "gradient_variance", example_loss_fn, w, examples
    )
    deviations = gradients - jnp.mean(gradients, axis=0, keepdims=True)
    return jnp.mean(jnp.sum(jnp.square(deviations), axis=1))


def fisher_rao_norm(
    example_loss_fn: Callable[[PyTree, PyTree], Float[Array, ""]],
    w: PyTree,
    examples: PyTree,
) -> Float[Array, ""]:
    r"""Squared Fisher–Rao norm of the parameters over a set of examples.

    $\|w\|_{fr}^2 = \frac1n\sum_i\langle w, \nabla_w\ell(w, z_i)\rangle^2$.
    The empirical version of Liang, Poggio, Rakhlin & Stokes (2019), Definition 2
    (with the loss's gradient, their eq. (3.2)), over the ``examples``. Each inner
    product is one forward-mode directional derivative of $\ell$ along $w$
    (``jax.jvp``), so no gradient is stored. For a bias-free ReLU network with $L$
    hidden layers, $f_w$ is homogeneous of degree $L+1$ in $w$ and
    $\langle w,\nabla_w\ell\rangle = (L+1)\langle\partial\ell/\partial f, f_w(x)\rangle$
    (Liang et al., Lemma 2.1), so the norm is unchanged when a layer is multiplied by
    $\alpha$ and the next by $1/\alpha$.

    Args:
        example_loss_fn: $\ell(w, z)$, the loss of one example.
        w: the parameters.
        examples: a pytree of arrays whose leading axis indexes the $n \ge 1$
            examples.

    Returns:
        The squared Fisher–Rao norm, a scalar.

    Raises:
        ValueError: as ``empirical_fisher``.

    References:
        Liang, Poggio, Rakhlin, Stokes (2019), "Fisher-Rao Metric, Geometry, and
        Complexity of Neural Networks", AISTATS, Definition 2 and Lemma 2.1.
        Jiang et al. (2020), ICLR (``fisher.rao``).

    Examples:
        >>> import jax.numpy as jnp
        >>> loss = lambda w, z: 0.5 * (jnp.dot(z[:2], w) - z[2]) ** 2
        >>> examples = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
        >>> w = jnp.array([2.0, 3.0])  # <w, grad> = r * w.x: 2 * 2, 2 * 3
        >>> float(fisher_rao_norm(loss, w, examples))  # (16 + 36) / 2
        26.0
    """
    call = "fisher_rao_norm"
    check_examples(call, "examples", examples)
    first = jax.tree_util.tree_map(lambda leaf: leaf[0], examples)
    check_scalar_loss(call, "example_loss_fn", example_loss_fn, w, first)

    def directional(z):
        _, derivative = jax.jvp(lambda p: example_loss_fn(p, z), (w,), (w,))
        return derivative

    return jnp.mean(jnp.square(jax.vmap(directional)(examples)))
