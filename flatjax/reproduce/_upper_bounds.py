r"""``flatjax reproduce``, experiment ``upper_bounds`` (Theorems 4 and 8, Lemma 5).

GD, SAM and SA-GD generalize on a benign least-squares problem at $T=n$,
$\eta=1/(4\beta)$, $r=c/\sqrt n$: the population risk of the average iterate is at
most the explicit bound of Theorems 4/8 (Lemma 4 with Theorem 2 or 5 and Lemma 5),
and the leave-one-out stability is at most Lemma 5's bound. Sizes are chosen so that
each bound is below the trivial bound over the domain (least squares in $d=2$:
$F(w)=\|w-w^\star\|^2/(2d)\le(1+\|w^\star\|)^2/4$; stability
$\|A(S)-A(S^{(i)})\|^2\le4$ on the unit ball); where it is not, the verdict is NOT
INFORMATIVE.
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
    Experiment,
    Settings,
    run_sweep_runs,
    save_figure,
    upper_check_and_row,
)

ETA, D, DISTANCE = 0.25, 2, 0.5  # w* = e_1 / 2, w_1 = 0
RADIUS_SCALE = 0.05  # r = 0.05 / sqrt(n): the bound's beta r^2 n term stays small
TRIVIAL_RISK = (1 + DISTANCE) ** 2 / (2 * D)
TRIVIAL_STABILITY = 4.0


def _population_bound(optimizer, radius, n):
    fn = (
        bounds.theorem4_sagd_population_bound
        if optimizer == "sa_gd"
        else bounds.theorem8_sam_population_bound
    )
    return float(
        fn(
            learning_rate=ETA,
            radius=radius,
            rho=0.0,
            beta=1.0,
            steps=n,
            n=n,
            initial_distance=DISTANCE,
        )
    )


def upper_bounds(settings: Settings) -> Experiment:
    """Theorems 4 and 8: GD, SAM and SA-GD generalize on a benign problem; Lemma 5."""
    ns = settings.pick((256,), (256, 1024), (256, 1024, 4096))
    seeds = min(settings.seeds, settings.pick(4, 256, 1024))
    checks, rows = [], []
    for n in ns:
        radius = RADIUS_SCALE / math.sqrt(n)
        for optimizer in ("gd", "sam", "sa_gd"):
            grid = {"d": [D], "n": [n], "learning_rate": [ETA]}
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
                seeds=seeds,
                **extra,
            )
            r = 0.0 if optimizer == "gd" else radius
            bound = _population_bound(optimizer, r, n)
            theorem = "Thm 4" if optimizer == "sa_gd" else "Thm 8"
            if optimizer == "gd":
                theorem = "Thm 4/8 at r = 0"
            check, row = upper_check_and_row(
                f"{optimizer.upper()} E F(avg), least squares d={D}, n=T={n}, "
                f"r={RADIUS_SCALE}/sqrt(n)",
                runs.population_risk_tau1,
                bound,
                TRIVIAL_RISK,
                f"{theorem} (D = {DISTANCE})",
                column="risk",
                n=n,
                optimizer=optimizer,
            )
            checks.append(check)
            rows.append(row)
    stability_rows = []
    count = min(settings.seeds, settings.pick(2, 8, 64))
    for n in settings.pick((64,), (64, 256), (64, 256, 1024)):
        problem = LeastSquares(d=D, n=n)
        radius = RADIUS_SCALE / math.sqrt(n)
        keys = jax.random.split(jax.random.key(7), count)
        for name, make in (
            ("gd", lambda: gd(ETA)),
            ("sam", lambda r=radius: sam(ETA, r)),
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
                    learning_rate=ETA,
                    radius=r,
                    rho=0.0,
                    beta=1.0,
                    steps=n,
                    n=n,
                    initial_distance=DISTANCE,
                )
            )
            check, row = upper_check_and_row(
                f"{name.upper()} eps_stab, n=T={n}",
                np.asarray(epsilon),
                bound,
                TRIVIAL_STABILITY,
                "Lemma 5 (max(1, D^2) = 1)",
                column="epsilon",
                n=n,
                optimizer=name,
            )
            checks.append(check)
            stability_rows.append(row)
    import pandas as pd

    table = pd.DataFrame(rows)
    stability = pd.DataFrame(stability_rows)

    def draw(ax, frame, column, label, bound_label, trivial, trivial_label):
        # SA-GD and SAM nearly coincide at r = 0.05/sqrt(n): SA-GD is drawn wide and
        # pale underneath so that neither hides the other.
        for (optimizer, part), marker in zip(
            frame.groupby("optimizer"), "os^", strict=False
        ):
            wide = {"lw": 6, "alpha": 0.35, "ms": 11} if optimizer == "sa_gd" else {}
            line = ax.plot(
                part.n,
                part[column],
                marker + "-",
                label=f"{str(optimizer).upper()}: {label}",
                **wide,
            )[0]
            ax.plot(
                part.n,
                part.bound,
                marker + ":",
                mfc="none",
                color=line.get_color(),
                label=bound_label,
                **wide,
            )
        ax.axhline(trivial, color="k", lw=1, label=trivial_label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")

    def draw_risk(ax):
        draw(
            ax,
            table,
            "risk",
            "E F(avg)",
            "  its bound",
            TRIVIAL_RISK,
            "trivial bound (domain)",
        )

    def draw_stability(ax):
        draw(
            ax,
            stability,
            "epsilon",
            "eps_stab",
            "  Lemma 5 bound",
            TRIVIAL_STABILITY,
            "trivial bound (4)",
        )

    figures = [
        save_figure(
            settings,
            "upper_bounds_risk",
            draw_risk,
            xlabel="n = T",
            ylabel="population risk of the average",
            title=f"Theorems 4/8: least squares d={D}, eta=1/4, r=0.05/sqrt(n)",
        ),
        save_figure(
            settings,
            "upper_bounds_stability",
            draw_stability,
            xlabel="n = T",
            ylabel="leave-one-out stability eps",
            title="Lemma 5: stability vs its bound",
        ),
    ]
    return Experiment(
        "upper_bounds",
        "Theorems 4 and 8, Lemma 5: GD, SAM and SA-GD generalize",
        checks,
        figures,
        {"upper_bounds": table, "stability": stability},
        notes=[
            f"d = {D} and n = T >= 256 make the Theorem 4/8 bounds informative "
            f"(below the trivial {TRIVIAL_RISK:.4g}); the former d = 8, n <= 64 "
            "runs compared ~0.01 with bounds 1.2-11.75, above every risk in the ball.",
            "The former 'log-log slope <= -0.5' verdicts are gone: with r = c/sqrt(n) "
            "the bound's beta r^2 n term is constant, so no decay is implied.",
        ],
    )
