"""The bounds of arXiv 2511.03548 as pure JAX functions, with explicit constants."""

from ._bounds import (
    lemma1_regret_bound,
    lemma4_population_risk_bound,
    lemma5_stability_bound,
    theorem1_flat_erm_excess_risk,
    theorem2_sagd_saer_bound,
    theorem3_hypotheses_hold,
    theorem3_sagd_lower_bound,
    theorem3_sagd_lower_bound_rate,
    theorem4_sagd_population_bound,
    theorem5_sam_empirical_risk_bound,
    theorem6_sam_saer_gap,
    theorem7_hypotheses_hold,
    theorem7_sam_lower_bound,
    theorem8_sam_population_bound,
)

__all__ = [
    "lemma1_regret_bound",
    "lemma4_population_risk_bound",
    "lemma5_stability_bound",
    "theorem1_flat_erm_excess_risk",
    "theorem2_sagd_saer_bound",
    "theorem3_hypotheses_hold",
    "theorem3_sagd_lower_bound",
    "theorem3_sagd_lower_bound_rate",
    "theorem4_sagd_population_bound",
    "theorem5_sam_empirical_risk_bound",
    "theorem6_sam_saer_gap",
    "theorem7_hypotheses_hold",
    "theorem7_sam_lower_bound",
    "theorem8_sam_population_bound",
]
