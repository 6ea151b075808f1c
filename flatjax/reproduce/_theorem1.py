"""``flatjax reproduce``, experiment ``theorem1``.

Theorem 1: the flat ERM e_I has risk (1-rho)^2/4, the sharp rho e_d has 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..problems import FlatERM
from ._verdicts import (
    Experiment,
    Settings,
    make_check,
    save_figure,
)


def theorem1(settings: Settings) -> Experiment:
    """Theorem 1: the flat ERM e_I has risk (1-rho)^2/4, the sharp rho e_d has 0."""
    ns = (4, 6) if settings.quick else (4, 6, 8, 10)
    rhos = (0.0, 0.25, 0.5)
    radius = 0.5
    checks, rows = [], []
    keys = jax.random.split(jax.random.key(1), settings.seeds)
    for n in ns:

        @jax.jit
        def measure(keys, rho, n=n):
            def one(key):
                problem = FlatERM(n=n, rho=rho)
                event = problem.good_event(problem.sample(key))
                S = problem.sample_conditioned(jax.random.fold_in(key, 1))
                flat, sharp = problem.flat_erm(S), problem.sharp_erm()
                shift = jnp.zeros(problem.d).at[-1].set(radius)
                return {
                    "event": event,
                    "flat_risk": problem.population_risk(flat).value,
                    "sharp_risk": problem.population_risk(sharp).value,
                    "flat_empirical": problem.empirical_risk(flat, S),
                    "sharp_empirical": problem.empirical_risk(sharp, S),
                    "flat_saer": problem.empirical_risk(flat + shift, S),
                    "sharp_saer": problem.empirical_risk(sharp + shift, S),
                }

            return jax.vmap(one)(keys)

        for rho in rhos:
            out = jax.tree_util.tree_map(np.asarray, measure(keys, rho))
            rows.append({"n": n, "rho": rho, **{k: v.mean() for k, v in out.items()}})
            exact = 0.25 * (1 - rho) ** 2
            label = f"n={n}, rho={rho}"
            checks.append(
                make_check(
                    f"F(e_I) - F(w*), {label}",
                    out["flat_risk"],
                    f"(1-rho)^2/4 = {exact:.6g}",
                    np.all(np.abs(out["flat_risk"] - exact) <= 1e-12)
                    and np.all(out["flat_empirical"] == 0),
                    "every seed within 1e-12, F_S(e_I) = 0",
                )
            )
            checks.append(
                make_check(
                    f"F(rho e_d), {label}",
                    out["sharp_risk"],
                    "0",
                    np.all(out["sharp_risk"] == 0)
                    and np.all(out["sharp_empirical"] == 0),
                    "every seed exactly 0",
                )
            )
            saer_flat = 0.5 * max(radius - rho, 0.0) ** 2
            checks.append(
                make_check(
                    f"F_S^r(e_I) at r={radius}, {label}",
                    out["flat_saer"],
                    f"[r-rho]_+^2/2 = {saer_flat:.6g} (< r^2/2 at rho e_d)",
                    np.all(np.abs(out["flat_saer"] - saer_flat) <= 1e-12)
                    and np.all(np.abs(out["sharp_saer"] - 0.5 * radius**2) <= 1e-12),
                    "flat ERM attains the SAER minimum; sharp ERM r^2/2",
                )
            )
        p = FlatERM(n=n).good_event_probability
        se = math.sqrt(p * (1 - p) / settings.seeds)
        frequency = out["event"].astype(float)
        checks.append(
            make_check(
                f"good-event frequency, n={n}",
                frequency,
                f"1-(1-2^-n)^(2^n) = {p:.5f}",
                abs(frequency.mean() - p) <= 4 * se,
                "within 4 standard errors",
            )
        )
    import pandas as pd

    table = pd.DataFrame(rows)

    def draw(ax):
        for n in ns:
            part = table[table.n == n]
            ax.plot(part.rho, part.flat_risk, "o-", label=f"flat ERM e_I, n={n}")
        ax.plot(rhos, [0.0] * len(rhos), "k--", label="sharp ERM rho e_d (all n)")
        ax.set_xlabel("flatness radius rho")
        ax.set_ylabel("population risk")
        ax.set_title("Theorem 1: flat but bad, sharp but good")

    figure = save_figure(settings, "theorem1_flat_vs_sharp", draw)
    return Experiment(
        "theorem1",
        "Theorem 1: flat ERM vs sharp ERM",
        checks,
        [figure],
        {"theorem1": table},
    )
