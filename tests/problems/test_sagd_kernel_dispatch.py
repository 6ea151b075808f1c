"""SAGDTrap's fused kernel recognizes the adversarial maximizer by its type.

The bug caught: the kernel probing ``getattr(maximizer, "fn", ...)`` and running
Theorem 3's oracle for a maximizer that is not the oracle (or the reverse: the
sweep's ``FunctionMaximizer``-wrapped oracle silently falling back to the slow
generic runner).
"""

import jax
import pytest

from flatjax.optim import FunctionMaximizer
from flatjax.problems import SAGDTrap
from flatjax.runner import run_fused

PROBLEM = SAGDTrap(n=3, T=4, rho=0.05)
S = PROBLEM.sample_conditioned(jax.random.key(0))


def test_kernel_for_gd_and_for_the_adversarial_maximizer_only():
    oracle = PROBLEM.adversarial_maximizer(S)
    assert PROBLEM.fused_kernel(S, "gd", 0.5, 0.4) is not None
    kernel = PROBLEM.fused_kernel(S, "sa_gd", 0.5, 0.4, oracle, zero_start=True)
    assert kernel is not None
    other = PROBLEM.extra_coordinate_maximizer()
    assert PROBLEM.fused_kernel(S, "sa_gd", 0.5, 0.4, other) is None
    # A wrapper with an `fn` attribute is not the oracle: the kernel does not probe.
    assert PROBLEM.fused_kernel(S, "sa_gd", 0.5, 0.4, FunctionMaximizer(oracle)) is None
    assert PROBLEM.fused_kernel(S, "sam", 0.5, 0.4, oracle) is None


@pytest.mark.parametrize("wrap", [False, True], ids=["bare", "FunctionMaximizer"])
def test_run_fused_hands_the_kernel_the_oracle_wrapped_or_not(monkeypatch, wrap):
    kernels = []
    original = SAGDTrap.fused_kernel

    def spy(self, *args, **kwargs):
        kernels.append(original(self, *args, **kwargs))
        return kernels[-1]

    monkeypatch.setattr(SAGDTrap, "fused_kernel", spy)
    oracle = PROBLEM.adversarial_maximizer(S)
    maximizer = FunctionMaximizer(oracle) if wrap else oracle
    run_fused(
        PROBLEM, "sa_gd", S, 6, learning_rate=0.5, radius=0.4, maximizer=maximizer
    )
    assert len(kernels) == 1 and kernels[0] is not None
