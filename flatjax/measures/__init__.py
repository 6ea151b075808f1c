"""Flatness and sharpness measures for any loss over any parameter pytree."""

from ._base import Estimate
from ._entropy import LocalEntropy, local_entropy
from ._fisher import EmpiricalFisher, empirical_fisher, gradient_variance
from ._hessian import (
    FrobeniusNorm,
    HessianEigenvalues,
    hessian_eigenvalues,
    hessian_frobenius_norm,
    hessian_trace,
)
from ._landscape import (
    filter_normalized_direction,
    loss_along_direction,
    loss_along_plane,
    path_norm,
)
from ._pac_bayes import (
    PerturbationRatio,
    PerturbationScale,
    expected_sharpness,
    pac_bayes_sigma,
    parameter_perturbation_ratio,
)
from ._sharpness import (
    FlatnessRadius,
    KeskarSharpness,
    SAERGap,
    flatness_radius,
    keskar_sharpness,
    saer_gap,
)

__all__ = [
    "EmpiricalFisher",
    "Estimate",
    "FlatnessRadius",
    "FrobeniusNorm",
    "HessianEigenvalues",
    "KeskarSharpness",
    "LocalEntropy",
    "PerturbationRatio",
    "PerturbationScale",
    "SAERGap",
    "empirical_fisher",
    "expected_sharpness",
    "filter_normalized_direction",
    "flatness_radius",
    "gradient_variance",
    "hessian_eigenvalues",
    "hessian_frobenius_norm",
    "hessian_trace",
    "keskar_sharpness",
    "local_entropy",
    "loss_along_direction",
    "loss_along_plane",
    "pac_bayes_sigma",
    "parameter_perturbation_ratio",
    "path_norm",
    "saer_gap",
]
