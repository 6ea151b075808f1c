r"""``flatjax reproduce``, experiment ``theorem7`` (Theorem 7, Appendix C.3).

SAM's normalized ascent turns a trigger of size ~1e-13 into a drift along the unseen
block, so every suffix average has empirical risk 0 and population risk at least the
certificate $\frac14\sum_{j\ge2}\widehat w_\tau^{(I)}(j)^2=\Omega(\eta^2r^2T)$.

The instance is the default ``SAMTrap``, whose chain schedule
(``SAMTrap.proof_schedule``) is fixed before sampling and keeps Lemma 8's invariant
$-\sigma\le w_t^{(I)}(2)\le0$ on every training set of the good event; the invariant
is checked on every run. The constant schedule $\delta_j=0.03$ is run as a control
labelled "outside the proof": it breaks the invariant.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import bounds
from ..problems import SAMTrap
from ..runner import run_fused
from ._verdicts import (
    Experiment,
    Settings,
    frequency_check,
    log_slope,
    make_check,
    save_figure,
)

N = 6
ETA = 1 / 24
#: The paper's Theorem 7 reference certificates (n = 6, eta = 1/24, min over tau),
#: computed with the constant schedule 0.03; the proof's schedule changes them by
#: less than 0.2% (its delta_3 differs).
REFERENCE = {
    ("fixed r = 1/2", 16): 0.000408,
    ("fixed r = 1/2", 32): 0.000948,
    ("eta r sqrt(T) = 1/2", 16): 0.014684,
    ("eta r sqrt(T) = 1/2", 32): 0.017061,
}
REFERENCE_RTOL = 5e-3


def _regimes(steps):
    """(label, eta, r): the paper's two regimes and the eta ~ 1/sqrt(T), r = 1 one."""
    return (
        ("fixed r = 1/2", ETA, 0.5),
        ("eta r sqrt(T) = 1/2", ETA, 1 / (2 * ETA * math.sqrt(steps))),
        ("eta = 1/(2 sqrt(T)), r = 1", 1 / (2 * math.sqrt(steps)), 1.0),
    )


def _runs(steps, etas, radii, seeds, key, *, algorithm="sam", delta=None):
    """Per-seed, per-regime records of SAM on SAMTrap with every tau in [T]."""
    starts = tuple(range(1, steps + 1))

    def one_regime(eta, radius, S):
        problem = SAMTrap(N, steps, eta, radius, delta=delta, check_theorem=False)
        index = problem.unseen_index(S)
        result = run_fused(
            problem,
            algorithm,
            S,
            steps,
            learning_rate=eta,
            radius=radius,
            suffix_starts=starts,
            record_population=False,
            extra_metrics={
                "u2": lambda w: problem.blocks(w)[index, 1],
                "certificate": lambda w: problem.certificate(w, S),
            },
        )
        u2 = result.metrics["u2"]
        sigma = -u2[1]
        slack = 1e-9 * jnp.abs(sigma)
        invariant = jnp.all(u2[1:] >= -sigma - slack) & jnp.all(u2[1:] <= 0.0)
        return {
            "certificate": jnp.min(result.suffix_metrics["certificate"]),
            "empirical": jnp.max(jnp.abs(result.suffix_metrics["empirical_risk"])),
            "invariant": invariant & (sigma > 0),
            "u2_max": jnp.max(u2),
            "sigma": sigma,
            "sigma_closed_form": problem.chain_sigma(S),
            "sigma_lower_bound": problem.sigma_lower_bound(),
            "in_proof": problem.in_proof(),
            "max_norm": jnp.max(result.metrics["iterate_norm"]),
            "projection_acted": result.projection_acted,
            "nonfinite": result.nonfinite_step >= 0,
        }

    def one(key):
        sampler = SAMTrap(N, steps, ETA, 0.5, delta=delta, check_theorem=False)
        S = sampler.sample_conditioned(key)
        unseen = jnp.sum(jnp.all(S == 0, axis=0))
        records = jax.vmap(lambda e, r: one_regime(e, r, S))(
            jnp.asarray(etas), jnp.asarray(radii)
        )
        return records | {"unseen": unseen}

    keys = jax.random.split(key, seeds)
    out = jax.jit(lambda k: jax.lax.map(one, k, batch_size=4))(keys)
    return jax.tree_util.tree_map(np.asarray, out)


def theorem7(settings: Settings) -> Experiment:
    """Theorem 7: SAM's normalized ascent amplifies a 1e-13 trigger into large risk."""
    steps_list = settings.pick((16,), (16, 32), (16, 32, 64, 128))
    seeds = min(settings.seeds, settings.pick(4, 64, 1024))
    checks, rows = [], []
    for steps in steps_list:
        regimes = _regimes(steps)
        out = _runs(
            steps,
            [e for _, e, _ in regimes],
            [r for _, _, r in regimes],
            seeds,
            jax.random.key(steps),
        )
        checks.append(
            make_check(
                f"unseen coordinates of every conditioned training set, T={steps}",
                "exact",
                out["unseen"],
                "exactly 1 (the good event: exactly one I with z(I)=0 for all z)",
                np.all(out["unseen"] == 1),
                "every seed",
            )
        )
        for k, (label, eta, radius) in enumerate(regimes):
            cert = out["certificate"][:, k]
            lower = float(
                bounds.theorem7_sam_lower_bound(
                    learning_rate=eta, radius=radius, steps=steps
                )
            )
            scale = eta**2 * radius**2 * steps
            name = f"{label}, T={steps}"
            checks.append(
                make_check(
                    f"min over all tau of the certificate, {name}",
                    "lower bound",
                    cert,
                    f">= Thm 7 bound (floor(T/2)-2) eta^2 r^2/64 = {lower:.4g}",
                    cert.min() >= lower,
                    "every seed",
                )
            )
            factor = 64 * (steps - 1) / (steps // 2 - 2)
            checks.append(
                make_check(
                    f"certificate / Thm 7 bound, {name}",
                    "tightness",
                    cert / lower,
                    f"<= 64(T-1)/(floor(T/2)-2) = {factor:.4g} (Lemma 8: every "
                    "chain coordinate has |u| <= 2 eta r)",
                    np.all(cert / lower <= factor),
                    "every seed (a bound too weak, or an ascent too long, exceeds it)",
                )
            )
            if (label, steps) in REFERENCE:
                reference = REFERENCE[(label, steps)]
                error = np.abs(cert / reference - 1)
                checks.append(
                    make_check(
                        f"certificate vs the paper's reference, {name}",
                        "exact",
                        cert,
                        f"{reference} (ratio to eta^2 r^2 T: {reference / scale:.4f})",
                        np.all(error <= REFERENCE_RTOL),
                        f"every seed within {REFERENCE_RTOL:.1%} (the reference has 3 "
                        "digits and used the constant schedule)",
                    )
                )
            checks.append(
                make_check(
                    f"Lemma 8 invariant -sigma <= w_t^(I)(2) <= 0 for all t, {name}",
                    "exact",
                    out["invariant"][:, k].astype(float),
                    "holds on every run (the proof's hypothesis; schedule fixed "
                    "before sampling)",
                    out["invariant"][:, k].all()
                    and out["in_proof"][:, k].all()
                    and np.allclose(
                        out["sigma"][:, k],
                        out["sigma_closed_form"][:, k],
                        rtol=1e-9,
                        atol=0,
                    )
                    and np.all(
                        out["sigma"][:, k]
                        >= out["sigma_lower_bound"][:, k] * (1 - 1e-9)
                    ),
                    "every seed and t; sigma equals its closed form (rtol 1e-9) and "
                    "is >= its lower bound over the good event",
                )
            )
            checks.append(
                make_check(
                    f"max_tau |F_S(w_tau)|, {name}",
                    "exact",
                    out["empirical"][:, k],
                    "0 (SAM minimizes the empirical risk; float64 rounding of ~1e-13 "
                    "terms)",
                    np.all(out["empirical"][:, k] <= 1e-20)
                    and not out["projection_acted"][:, k].any()
                    and not out["nonfinite"][:, k].any(),
                    "every seed <= 1e-20; no projection, no NaN",
                )
            )
            rows.append(
                {
                    "steps": steps,
                    "regime": label,
                    "eta": eta,
                    "radius": radius,
                    "certificate": cert.mean(),
                    "ratio": cert.mean() / scale,
                    "bound": lower,
                    "max_norm": out["max_norm"][:, k].max(),
                }
            )
    steps = steps_list[0]
    outside = _runs(steps, [ETA], [0.5], min(seeds, 8), jax.random.key(70), delta=0.03)
    checks.append(
        make_check(
            f"control delta_j = 0.03 (outside the proof): invariant, T={steps}",
            "control",
            outside["u2_max"][:, 0],
            "breaks: w_t^(I)(2) turns positive (so this instance has no proof)",
            not outside["invariant"][:, 0].any()
            and np.all(outside["u2_max"][:, 0] > 0)
            and not outside["in_proof"][:, 0].any(),
            "every seed breaks it; SAMTrap.in_proof() is false",
        )
    )
    gd = _runs(
        steps,
        [ETA],
        [1 / (2 * ETA * math.sqrt(steps))],
        min(seeds, 8),
        jax.random.key(71),
        algorithm="gd",
    )
    checks.append(
        make_check(
            f"control GD (no ascent): certificate, T={steps}",
            "control",
            gd["certificate"][:, 0],
            "0 (GD moves by ~1e-16)",
            np.all(gd["certificate"][:, 0] <= 1e-28),
            "every seed <= 1e-28",
        )
    )
    problem = SAMTrap(N, 6, ETA, 0.5)
    draws = jax.random.split(jax.random.key(72), settings.frequency_draws)
    events = jax.jit(jax.vmap(lambda k: problem.good_event(problem.sample(k))))(draws)
    checks.append(
        frequency_check(
            f"good-event frequency (exactly one unseen), n={N}",
            events,
            problem.good_event_probability,
            "Theorem 7 needs >= 1/3",
            minimum=1 / 3,
        )
    )
    import pandas as pd

    table = pd.DataFrame(rows)
    if len(steps_list) >= 2:
        fixed = table[table.regime == "fixed r = 1/2"]
        slope = log_slope(fixed.steps, fixed.certificate)
        checks.append(
            make_check(
                "log-log slope of the certificate vs T, fixed r = 1/2",
                "rate",
                slope,
                "1 (Omega(eta^2 r^2 T), and the certificate is at most (T-1) eta^2 "
                "r^2: linear in T)",
                0.9 <= slope <= 1.3,
                "0.9 <= slope <= 1.3 (the ratio to eta^2 r^2 T grows slowly with T)",
            )
        )
        for label in ("eta r sqrt(T) = 1/2", "eta = 1/(2 sqrt(T)), r = 1"):
            part = table[table.regime == label]
            decay = float(part.certificate.min() / part.certificate.iloc[0])
            checks.append(
                make_check(
                    f"smallest certificate / certificate at T={steps_list[0]}, {label}",
                    "rate",
                    decay,
                    "Theta(1): eta^2 r^2 T = 1/4 at every T: the risk does not decay",
                    decay >= 0.9,
                    ">= 0.9 over the T run",
                )
            )

    def draw(ax):
        # The two regimes with eta r sqrt(T) = 1/2 give nearly the same certificate
        # (it depends on eta r to leading order): the first is drawn wide and pale
        # underneath so that neither hides the other.
        styles = {
            "fixed r = 1/2": dict(marker="^", color="C2"),
            "eta = 1/(2 sqrt(T)), r = 1": dict(
                marker="o", color="C0", lw=6, alpha=0.35, ms=10
            ),
            "eta r sqrt(T) = 1/2": dict(marker="s", color="C3"),
        }
        for label, style in styles.items():
            part = table[table.regime == label]
            ax.plot(part.steps, part.certificate, "-", label=label, **style)
            ax.plot(
                part.steps, part.bound, ":", mfc="none", label="  its bound", **style
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")

    figure = save_figure(
        settings,
        "theorem7_sam_certificate",
        draw,
        xlabel="T",
        ylabel="min over tau of the certificate <= F(w_tau)",
        title="Theorem 7: SAM's certificate (solid) vs the bound (dotted), n = 6",
    )
    return Experiment(
        "theorem7",
        "Theorem 7: SAM amplifies a tiny trigger",
        checks,
        [figure],
        {"theorem7": table},
        notes=[
            "Instance: SAMTrap's default chain schedule SAMTrap.proof_schedule(n, T), "
            "fixed before sampling, inside Lemma 8's proof (checked on every run). "
            "The constant schedule 0.03 is the control 'outside the proof'.",
            f"{seeds} seeds per T (capped: d = 64 T + 1); every tau in [T].",
        ],
    )
