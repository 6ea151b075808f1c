"""``flatjax reproduce``, experiment ``theorems2_5``.

Theorems 2 and 5: SA-GD's SAER and SAM's F_S of the average vs the bound.
"""

from __future__ import annotations

import math

from .. import bounds
from ._verdicts import (
    Check,
    Experiment,
    Settings,
    log_slope,
    make_check,
    run_sweep_runs,
    save_figure,
)


def theorems2_5(settings: Settings) -> Experiment:
    """Theorems 2 and 5: SA-GD's SAER and SAM's F_S of the average vs the bound."""
    steps_list = (8, 32) if settings.quick else (8, 16, 32, 64, 128, 256)
    eta, checks, rows = 0.25, [], []
    for steps in steps_list:
        radius = 1 / math.sqrt(steps)
        common = {
            "problem": "LeastSquares",
            "grid": {"d": [8], "n": [32], "learning_rate": [eta], "radius": [radius]},
            "steps": steps,
            "suffix_starts": (1,),
            "population": False,
        }
        sagd = run_sweep_runs(
            settings,
            f"thm2_T{steps}",
            optimizer="sa_gd",
            maximizer="quadratic",
            **common,
        )
        sam_runs = run_sweep_runs(settings, f"thm5_T{steps}", optimizer="sam", **common)
        bound = float(
            bounds.theorem2_sagd_saer_bound(
                learning_rate=eta,
                radius=radius,
                rho=0.0,
                beta=1.0,
                steps=steps,
                initial_distance=0.5,
            )
        )
        rows.append(
            {
                "steps": steps,
                "sagd_saer": sagd.saer_tau1.mean(),
                "sam_empirical": sam_runs.empirical_risk_tau1.mean(),
                "bound": bound,
            }
        )
        checks.append(
            make_check(
                f"SA-GD F_S^r(avg), T={steps}, r=1/sqrt(T)",
                sagd.saer_tau1,
                f"Thm 2 bound {bound:.4g}",
                sagd.saer_tau1.max() <= bound,
                "every seed <= bound",
            )
        )
        checks.append(
            make_check(
                f"SAM F_S(avg), T={steps}, r=1/sqrt(T)",
                sam_runs.empirical_risk_tau1,
                f"Thm 5 bound {bound:.4g}",
                sam_runs.empirical_risk_tau1.max() <= bound,
                "every seed <= bound",
            )
        )
    import pandas as pd

    table = pd.DataFrame(rows)
    for column, name in (("sagd_saer", "SA-GD F_S^r"), ("sam_empirical", "SAM F_S")):
        slope = log_slope(table.steps, table[column])
        checks.append(
            Check(
                f"log-log slope of {name} vs T",
                slope,
                0.0,
                f"bound slope {log_slope(table.steps, table.bound):.2f}",
                slope <= -0.5,
                "decays at least like T^-1/2",
            )
        )

    def draw(ax):
        ax.loglog(table.steps, table.sagd_saer, "o-", label="SA-GD: F_S^r(avg)")
        ax.loglog(table.steps, table.sam_empirical, "s-", label="SAM: F_S(avg)")
        ax.loglog(table.steps, table.bound, "k--", label="Theorems 2/5 bound")
        ax.set_xlabel("T")
        ax.set_title("Theorems 2 and 5 (LeastSquares d=8 n=32)")

    figure = save_figure(settings, "theorems2_5_rates", draw)
    return Experiment(
        "theorems2_5",
        "Theorems 2 and 5: optimization rates",
        checks,
        [figure],
        {"theorems2_5": table},
    )
