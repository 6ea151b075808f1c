"""``flatjax reproduce``, experiment ``upper_bounds``.

Theorems 4 and 8: GD and SAM generalize on a benign problem; Lemma 5.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from .. import bounds
from ..optim import gd, sam
from ..problems import LeastSquares
from ..runner import loo_stability
from ._verdicts import (
    Check,
    Experiment,
    Settings,
    log_slope,
    make_check,
    run_sweep_runs,
    save_figure,
)


def upper_bounds(settings: Settings) -> Experiment:
    """Theorems 4 and 8: GD and SAM generalize on a benign problem; Lemma 5."""
    ns = (16, 64) if settings.quick else (16, 32, 64, 128, 256)
    optimizers = ("gd", "sam") if settings.quick else ("gd", "sam", "sa_gd")
    eta, d, checks, rows = 0.25, 8, [], []
    for n in ns:
        radius = 0.5 / math.sqrt(n)
        for optimizer in optimizers:
            grid = {"d": [d], "n": [n], "learning_rate": [eta]}
            if optimizer != "gd":
                grid["radius"] = [radius]
            extra = {"maximizer": "quadratic"} if optimizer == "sa_gd" else {}
            runs = run_sweep_runs(
                settings,
                f"upper_{optimizer}_n{n}",
                problem="LeastSquares",
                optimizer=optimizer,
                grid=grid,
                steps=n,
                suffix_starts=(1,),
                **extra,
            )
            r = 0.0 if optimizer == "gd" else radius
            bound = float(
                bounds.theorem8_sam_population_bound(
                    learning_rate=eta,
                    radius=r,
                    rho=0.0,
                    beta=1.0,
                    steps=n,
                    n=n,
                    initial_distance=0.5,
                )
            )
            risk = runs.population_risk_tau1
            rows.append(
                {"n": n, "optimizer": optimizer, "risk": risk.mean(), "bound": bound}
            )
            checks.append(
                make_check(
                    f"{optimizer.upper()} E F(avg), n=T={n}",
                    risk,
                    f"Thm 4/8 bound {bound:.4g}",
                    risk.mean() + 1.96 * risk.std() / math.sqrt(len(risk)) <= bound,
                    "mean (95% upper) <= bound",
                )
            )
    import pandas as pd

    table = pd.DataFrame(rows)
    for optimizer in optimizers:
        part = table[table.optimizer == optimizer]
        slope = log_slope(part.n, part.risk)
        checks.append(
            Check(
                f"log-log slope of {optimizer.upper()} risk vs n",
                slope,
                0.0,
                "-1 (O(beta/n + beta r^2 n) with r = c/sqrt(n))",
                slope <= -0.5,
                "slope <= -0.5",
            )
        )
    stability_rows = []
    count = 8 if settings.quick else 64
    for n in ns:
        problem = LeastSquares(d=d, n=n)
        radius = 0.5 / math.sqrt(n)
        keys = jax.random.split(jax.random.key(7), count)
        for name, make in (
            ("gd", lambda: gd(eta)),
            ("sam", lambda r=radius: sam(eta, r)),
        ):
            epsilon = jax.jit(
                jax.vmap(
                    lambda k, make=make, problem=problem, n=n: (
                        loo_stability(problem, make(), problem.sample(k), n).epsilon
                    )
                )
            )(keys)
            r = 0.0 if name == "gd" else radius
            bound = float(
                bounds.lemma5_stability_bound(
                    learning_rate=eta, radius=r, rho=0.0, beta=1.0, steps=n, n=n
                )
            )
            stability_rows.append(
                {
                    "n": n,
                    "optimizer": name,
                    "epsilon": float(epsilon.mean()),
                    "bound": bound,
                }
            )
            checks.append(
                make_check(
                    f"{name.upper()} eps_stab, n=T={n}",
                    np.asarray(epsilon),
                    f"Lemma 5 bound {bound:.4g}",
                    float(epsilon.max()) <= bound,
                    "every seed <= bound",
                )
            )
    stability = pd.DataFrame(stability_rows)

    def draw_risk(ax):
        for optimizer in optimizers:
            part = table[table.optimizer == optimizer]
            ax.loglog(part.n, part.risk, "o-", label=f"{optimizer.upper()}: E F(avg)")
        part = table[table.optimizer == "sam"]
        ax.loglog(part.n, part.bound, "k--", label="Thm 8 bound (SAM)")
        ax.set_xlabel("n = T")
        ax.set_title("Theorems 4/8: benign least squares")

    def draw_stability(ax):
        for name in ("gd", "sam"):
            part = stability[stability.optimizer == name]
            ax.loglog(
                part.n, part.epsilon, "o-", label=f"{name.upper()}: measured eps_stab"
            )
            ax.loglog(part.n, part.bound, "--", label=f"{name.upper()}: Lemma 5 bound")
        ax.set_xlabel("n = T")
        ax.set_title("Lemma 5: leave-one-out stability")

    figures = [
        save_figure(settings, "upper_bounds_risk", draw_risk),
        save_figure(settings, "upper_bounds_stability", draw_stability),
    ]
    return Experiment(
        "upper_bounds",
        "Theorems 4 and 8: GD and SAM generalize",
        checks,
        figures,
        {"upper_bounds": table, "stability": stability},
    )
