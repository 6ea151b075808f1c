"""Run optax transforms on problems with ``lax.scan``: metrics and suffix averages."""

from ._fused import run_fused
from ._runner import RunResult, default_suffix_starts, run
from ._stability import LeaveOneOut, LooStabilityResult, loo_stability

__all__ = [
    "LeaveOneOut",
    "LooStabilityResult",
    "RunResult",
    "default_suffix_starts",
    "loo_stability",
    "run",
    "run_fused",
]
