"""Flatness and sharpness measures for any loss over any parameter pytree."""

from ._adaptive import (
    AdaptiveSharpness,
    SharpnessScale,
    adaptive_sharpness,
    average_adaptive_sharpness,
    sharpness_alpha,
)
from ._base import DEFAULT_PROBE_MEMORY, Estimate
from ._data import BatchedLoss, batched_loss
from ._entropy import LocalEntropy, local_entropy
from ._fisher import (
    EmpiricalFisher,
    empirical_fisher,
    fisher_rao_norm,
    gradient_variance,
)
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
    InitPACBayesBound,
    PerturbationRatio,
    PerturbationScale,
    distance_from_initialization,
    expected_sharpness,
    pac_bayes_init_bound,
    pac_bayes_sigma,
    parameter_perturbation_ratio,
)
from ._relative_flatness import relative_flatness
from ._sharpness import (
    FlatnessRadius,
    KeskarSharpness,
    SAERGap,
    flatness_radius,
    keskar_sharpness,
    saer_gap,
)
from ._spectrum import SpectralDensity, plot_spectral_density, spectral_density

__all__ = [
    "AdaptiveSharpness",
    "BatchedLoss",
    "DEFAULT_PROBE_MEMORY",
    "EmpiricalFisher",
    "Estimate",
    "FlatnessRadius",
    "FrobeniusNorm",
    "HessianEigenvalues",
    "InitPACBayesBound",
    "KeskarSharpness",
    "LocalEntropy",
    "PerturbationRatio",
    "PerturbationScale",
    "SAERGap",
    "SharpnessScale",
    "SpectralDensity",
    "adaptive_sharpness",
    "average_adaptive_sharpness",
    "batched_loss",
    "distance_from_initialization",
    "empirical_fisher",
    "expected_sharpness",
    "filter_normalized_direction",
    "fisher_rao_norm",
    "flatness_radius",
    "gradient_variance",
    "hessian_eigenvalues",
    "hessian_frobenius_norm",
    "hessian_trace",
    "keskar_sharpness",
    "local_entropy",
    "loss_along_direction",
    "loss_along_plane",
    "pac_bayes_init_bound",
    "pac_bayes_sigma",
    "parameter_perturbation_ratio",
    "path_norm",
    "plot_spectral_density",
    "relative_flatness",
    "saer_gap",
    "sharpness_alpha",
    "spectral_density",
]
