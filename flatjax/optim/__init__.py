"""Sharpness-aware optimizers as optax transforms, and exact inner maximization."""

from ._algorithms import ALGORITHMS, Algorithm, make_optimizer
from ._maximizer_base import (
    AbstractMaximizer,
    FunctionMaximizer,
    MaximizerMethod,
    SAERResult,
    saer,
    tree_norm,
)
from ._maximizers import (
    AscentMaximizer,
    QuadraticMaximizer,
    maximize_quadratic_on_ball,
)
from ._sa_erm import SAERMResult, sa_erm
from ._transforms import (
    ProjectionState,
    SharpnessAwareState,
    SharpnessAwareWrapperState,
    gd,
    project_onto_ball,
    sa_gd,
    sam,
    sharpness_aware,
    sharpness_aware_wrapper,
)

__all__ = [
    "ALGORITHMS",
    "AbstractMaximizer",
    "Algorithm",
    "AscentMaximizer",
    "FunctionMaximizer",
    "MaximizerMethod",
    "ProjectionState",
    "QuadraticMaximizer",
    "SAERMResult",
    "SAERResult",
    "SharpnessAwareState",
    "SharpnessAwareWrapperState",
    "gd",
    "make_optimizer",
    "maximize_quadratic_on_ball",
    "project_onto_ball",
    "sa_erm",
    "sa_gd",
    "saer",
    "sam",
    "sharpness_aware",
    "sharpness_aware_wrapper",
    "tree_norm",
]
