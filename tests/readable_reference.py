"""The test oracle for the fast paths: autodiff of the readable per-example ``loss``.

``readable_value_and_grad`` is ``jax.value_and_grad`` of the mean of the vmapped
``problem.loss`` (the paper's definition). The ``Readable*`` copies of the
constructions use it as their gradient and have no fused kernel, so ``run`` on them
is the reference that the fused gradients and kernels are held to.
"""

import jax
import jax.numpy as jnp

from flatjax.problems import SAGDTrap, SAMTrap


def readable_value_and_grad(problem, w, S):
    """Autodiff of F_S(w) = mean_k loss(w, z_k), the readable reference."""

    def empirical_risk(w):
        return jnp.mean(jax.vmap(problem.loss, in_axes=(None, 0))(w, S))

    return jax.value_and_grad(empirical_risk)(w)


class ReadableSAGDTrap(SAGDTrap):
    """``SAGDTrap`` with autodiff of the readable loss, and no fused kernel."""

    def value_and_grad(self, w, S):
        return readable_value_and_grad(self, w, S)

    def fused_kernel(self, *args, **kwargs):
        return None


class ReadableSAMTrap(SAMTrap):
    """``SAMTrap`` with autodiff of the readable loss, and no fused kernel."""

    def value_and_grad(self, w, S):
        return readable_value_and_grad(self, w, S)

    def fused_kernel(self, *args, **kwargs):
        return None
