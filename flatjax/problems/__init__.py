"""The hard instances of arXiv 2511.03548 and benign problems, as exact JAX objects."""

from ._base import AbstractProblem, RiskEstimate
from ._benign import LeastSquares, SquaredHinge
from ._erm import ClassicERM, FlatERM
from ._kernel import AbstractFusedKernel, KernelMetrics
from ._sagd_trap import SAGDTrap
from ._sam import SAMSharp, SAMTrap

__all__ = [
    "AbstractFusedKernel",
    "AbstractProblem",
    "ClassicERM",
    "FlatERM",
    "KernelMetrics",
    "LeastSquares",
    "RiskEstimate",
    "SAGDTrap",
    "SAMSharp",
    "SAMTrap",
    "SquaredHinge",
]
