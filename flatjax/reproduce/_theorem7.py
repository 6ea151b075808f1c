"""``flatjax reproduce``, experiment ``theorem7``.

Theorem 7: SAM's normalized ascent amplifies a 1e-13 trigger into large risk.
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


def theorem7(settings: Settings) -> Experiment:
    """Theorem 7: SAM's normalized ascent amplifies a 1e-13 trigger into large risk."""
    steps_list = (16, 32) if settings.quick else (16, 32, 64, 128)
    eta, checks, rows = 1 / 24, [], []
    seeds = min(settings.seeds, 256) if settings.quick else settings.seeds
    for steps in steps_list:
        saturated = 1 / (2 * eta * math.sqrt(steps))
        starts = tuple(sorted({1, steps // 4, steps // 2, 3 * steps // 4, steps}))
        runs = run_sweep_runs(
            settings,
            f"thm7_T{steps}",
            problem="SAMTrap",
            optimizer="sam",
            grid={
                "n": [6],
                "T": [steps],
                "learning_rate": [eta],
                "radius": [0.5, saturated],
            },
            suffix_starts=starts,
            seeds=seeds,
        )
        cert = runs[[f"certificate_tau{t}" for t in starts]].min(axis=1)
        empirical = runs[[f"empirical_risk_tau{t}" for t in starts]].abs().max(axis=1)
        for radius, regime in ((saturated, "saturated"), (0.5, "fixed r=1/2")):
            mask = runs.radius == radius
            lower = float(
                bounds.theorem7_sam_lower_bound(
                    learning_rate=eta, radius=radius, steps=steps
                )
            )
            scale = eta**2 * radius**2 * steps
            checks.append(
                make_check(
                    f"min_tau certificate, {regime}, T={steps}",
                    cert[mask],
                    f">= Thm 7 bound {lower:.3g}; eta^2 r^2 T = {scale:.3g}",
                    cert[mask].min() >= lower and cert[mask].min() > 0,
                    "every seed >= bound and > 0",
                )
            )
            rows.append(
                {
                    "steps": steps,
                    "regime": regime,
                    "certificate": cert[mask].mean(),
                    "ratio": (cert[mask] / scale).mean(),
                    "bound": lower,
                }
            )
        checks.append(
            make_check(
                f"max_tau |F_S(avg_tau)|, T={steps}",
                empirical,
                "0 (SAM minimizes the empirical risk)",
                empirical.max() <= 1e-20,
                "every seed <= 1e-20",
            )
        )
        checks.append(
            Check(
                f"projection acted, T={steps}",
                float(runs.projection_acted.mean()),
                0.0,
                "never",
                not runs.projection_acted.any() and not runs.nonfinite.any(),
                "no run projected or diverged",
            )
        )
    steps = steps_list[0]
    control = run_sweep_runs(
        settings,
        "thm7_gd",
        problem="SAMTrap",
        optimizer="gd",
        grid={
            "n": [6],
            "T": [steps],
            "learning_rate": [eta],
            "radius": [1 / (2 * eta * math.sqrt(steps))],
        },
        suffix_starts=(1, steps),
        seeds=min(seeds, 64),
    )
    checks.append(
        make_check(
            f"GD certificate, T={steps}",
            control[f"certificate_tau{steps}"],
            "0 (GD moves by ~1e-16)",
            control[f"certificate_tau{steps}"].max() <= 1e-28,
            "every seed <= 1e-28",
        )
    )
    import pandas as pd

    table = pd.DataFrame(rows)
    if len(steps_list) >= 2:
        fixed = table[table.regime == "fixed r=1/2"]
        slope = log_slope(fixed.steps, fixed.certificate)
        checks.append(
            Check(
                "log-log slope of the certificate vs T, fixed r",
                slope,
                0.0,
                "1 (Omega(eta^2 r^2 T): at least linear)",
                slope >= 0.8,
                "slope >= 0.8 (the ratio to eta^2 r^2 T grows slowly, digest §7.5)",
            )
        )

    def draw(ax):
        for regime, marker in (("saturated", "o-"), ("fixed r=1/2", "s-")):
            part = table[table.regime == regime]
            ax.loglog(
                part.steps, part.certificate, marker, label=f"certificate, {regime}"
            )
            ax.loglog(part.steps, part.bound, "--", label=f"Thm 7 bound, {regime}")
        ax.set_xlabel("T")
        ax.set_title("Theorem 7: SAM's risk certificate")

    figure = save_figure(settings, "theorem7_sam_certificate", draw)
    return Experiment(
        "theorem7",
        "Theorem 7: SAM amplifies a tiny trigger",
        checks,
        [figure],
        {"theorem7": table},
    )
