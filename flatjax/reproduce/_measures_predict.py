r"""``flatjax reproduce``, experiment ``measures_predict``.

Which flatness measures predict generalization where generalization is known exactly?
GD, SAM and SA-GD run over a grid of hyperparameters on the paper's constructions
(``SAGDTrap``, Theorem 3; ``SAMTrap``, Theorem 7) and a benign problem
(``LeastSquares``), through the sweep engine, which records the exact population risk
of the final and the averaged iterate. The iterates themselves are rebuilt with
``flatjax.runner.run_fused`` from the sweep's run keys (checked: the rebuilt empirical
risks equal the sweep's records), every applicable measure of ``flatjax.measures`` is
computed at both, and each measure's Kendall rank correlation with the population
risk is reported, overall and granulated by hyperparameter (Jiang et al. 2019, eq. 4).

No theorem says how these correlations should come out, so they are reports, not
verdicts. The one sign a theorem gives is checked: on Theorem 1's construction the
flat ERM $e_I$ has higher risk than the sharp ERM $\rho e_d$ while its SAER gap is
smaller (Theorem 1(ii)): the paper's sharpness ranks the pair the wrong way.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..measures import (
    adaptive_sharpness,
    average_adaptive_sharpness,
    expected_sharpness,
    fisher_rao_norm,
    gradient_variance,
    keskar_sharpness,
    pac_bayes_init_bound,
    pac_bayes_sigma,
    saer_gap,
)
from ..optim import AscentMaximizer, FunctionMaximizer, QuadraticMaximizer
from ..problems import FlatERM, LeastSquares, SAGDTrap, SAMTrap
from ..runner import run_fused
from ._verdicts import (
    REPORT,
    Check,
    Experiment,
    Settings,
    make_check,
    run_sweep_runs,
    save_figure,
)

#: Probing scales of the measures (one value each, the same for every problem).
RADIUS = 0.1  # SAER gap radius r
EPSILON = 0.05  # Keskar's box size
SIGMA = 0.05  # isotropic expected sharpness
RHO = 0.1  # adaptive sharpness radius
ETA = 0.01  # adaptive sharpness offset: c = |w| + eta (the paper's iterates have zeros)
THRESHOLD = 0.01  # loss increase allowed in the sigma' searches
NUM_BISECTIONS = 16
MAX_SIGMA = 1.0

#: The measures, each oriented so that larger means sharper (or more complex).
MEASURES = (
    "top_eigenvalue",
    "hessian_trace",
    "saer_gap",
    "keskar_sharpness",
    "expected_sharpness",
    "adaptive_worst",
    "adaptive_average",
    "pac_bayes_mag_flatness",
    "pac_bayes_init",
    "distance_from_init",
    "parameter_norm",
    "fisher_rao_norm",
    "gradient_variance",
    "relative_flatness",
)


#: The measures of ``--quick``: closed forms and plain Monte Carlo averages, whose
#: compiled programs are small; the searches (ascent, bisection) run in ``full``.
QUICK_MEASURES = (
    "top_eigenvalue",
    "hessian_trace",
    "expected_sharpness",
    "adaptive_average",
    "distance_from_init",
    "parameter_norm",
    "fisher_rao_norm",
    "gradient_variance",
    "relative_flatness",
)


def measure_point(problem, S, w, key, complete: bool = True) -> dict[str, jax.Array]:
    r"""The measures of ``F_S`` at the flat iterate ``w`` (jit/vmap-able).

    The problems here are small (d <= a few hundred), so the curvature measures are
    exact, from the dense Hessian: its top eigenvalue, its trace, and relative
    flatness, which for $w$ read as the single row of a linear layer is
    $\|w\|^2\,\mathrm{tr}H$ (Petzka et al. 2021). ``complete=False`` computes
    ``QUICK_MEASURES`` only.
    """
    keys = jax.random.split(key, 10)
    w1 = problem.initial_point()

    def loss(v):
        return problem.empirical_risk(v, S)

    example = problem.loss
    eigenvalues = jnp.linalg.eigvalsh(jax.hessian(loss)(w))
    trace = jnp.sum(eigenvalues)
    out = {
        "top_eigenvalue": eigenvalues[-1],
        "hessian_trace": trace,
        "expected_sharpness": expected_sharpness(
            loss, w, SIGMA, key=keys[4], num_samples=16
        ).value,
        "adaptive_average": average_adaptive_sharpness(
            loss, w, RHO, key=keys[6], eta=ETA, num_samples=16
        ).value,
        "distance_from_init": jnp.linalg.norm(w - w1),
        "parameter_norm": jnp.linalg.norm(w),
        "fisher_rao_norm": fisher_rao_norm(example, w, S),
        "gradient_variance": gradient_variance(example, w, S),
        "relative_flatness": jnp.sum(jnp.square(w)) * trace,
    }
    if not complete:
        return out
    resolution = MAX_SIGMA / 2**NUM_BISECTIONS
    mag = pac_bayes_sigma(
        loss,
        w,
        THRESHOLD,
        key=keys[7],
        num_samples=16,
        num_bisections=NUM_BISECTIONS,
        magnitude_offset=1e-3,
    )
    init = pac_bayes_init_bound(
        loss,
        w,
        w1,
        THRESHOLD,
        problem.n,
        key=keys[8],
        num_samples=16,
        num_bisections=NUM_BISECTIONS,
    )
    ascent = AscentMaximizer(loss, keys[2], num_restarts=2, num_steps=20)
    out.update(
        {
            "saer_gap": saer_gap(loss, w, RADIUS, ascent).value,
            "keskar_sharpness": keskar_sharpness(
                loss, w, EPSILON, key=keys[3], num_restarts=2, num_steps=20
            ).value,
            "adaptive_worst": adaptive_sharpness(
                loss, w, RHO, key=keys[5], eta=ETA, num_restarts=2, num_steps=20
            ).value,
            # 1/sigma'^2 (Jiang's pacbayes.mag.flatness); sigma' = 0 (no scale
            # passed) is clipped to the bisection's resolution to stay finite.
            "pac_bayes_mag_flatness": 1.0 / jnp.maximum(mag.value, resolution) ** 2,
            "pac_bayes_init": jnp.where(
                init.sigma.value > 0,
                init.value,
                init.distance**2 / (4 * resolution**2)
                + jnp.log(problem.n / resolution)
                + 10.0,
            ),
        }
    )
    return out


# ---------------------------------------------------------------- the sweeps


def _cases(settings: Settings) -> list[dict]:
    """(problem, optimizer, grid, maximizer) of every sweep."""
    if settings.quick:
        learning_rates, radii, n_trap, steps = [0.1, 0.3], [0.2, 0.5], 3, 8
        ls_rates, ls_radii = [0.05, 0.2], [0.05, 0.2]
    else:
        learning_rates, radii = [0.05, 0.1, 0.2, 0.4], [0.1, 0.2, 0.4, 0.6]
        n_trap, steps = 4, 16
        ls_rates, ls_radii = [0.02, 0.05, 0.1, 0.2], [0.02, 0.05, 0.1, 0.2]
    trap = {"n": [n_trap], "T": [steps], "rho": [0.1], "learning_rate": learning_rates}
    sam_trap = {"n": [n_trap], "T": [steps], "learning_rate": learning_rates}
    least = {"d": [8], "n": [16], "learning_rate": ls_rates}
    sam_cases = [
        dict(problem="SAMTrap", optimizer="gd", grid={**sam_trap, "radius": radii}),
        dict(problem="SAMTrap", optimizer="sam", grid={**sam_trap, "radius": radii}),
    ]
    if settings.tiny:  # tests and the mutation suite: one sweep of the construction
        return [
            dict(
                problem="SAGDTrap",
                optimizer="sa_gd",
                grid={**trap, "radius": radii},
                maximizer="adversarial",
            )
        ]
    return [
        dict(problem="SAGDTrap", optimizer="gd", grid=trap, maximizer=None),
        dict(
            problem="SAGDTrap",
            optimizer="sa_gd",
            grid={**trap, "radius": radii},
            maximizer="adversarial",
        ),
        *([] if settings.quick else sam_cases),
        dict(problem="LeastSquares", optimizer="gd", grid=least, steps=2 * steps),
        dict(
            problem="LeastSquares",
            optimizer="sam",
            grid={**least, "radius": ls_radii},
            steps=2 * steps,
        ),
    ]


def _build(name: str, static: dict, point: dict):
    """The problem of one run, as the sweep builds it (values may be traced)."""
    if name == "SAGDTrap":
        return SAGDTrap(static["n"], static["T"], point["rho"])
    if name == "SAMTrap":
        return SAMTrap(
            static["n"], static["T"], point["learning_rate"], point["radius"]
        )
    return LeastSquares(static["d"], static["n"])


def _maximizer(name: str | None, problem, S):
    """The sweep's exact maximizer of one run, by name (None for GD and SAM)."""
    if name is None:
        return None
    if name == "adversarial":
        return FunctionMaximizer(problem.adversarial_maximizer(S))
    X = S[:, :-1]
    hessian = X.T @ X / problem.n
    return QuadraticMaximizer(hessian, -hessian @ problem.w_star)


#: The traced arguments of each problem's constructor (the rest are static).
PROBLEM_ARGUMENTS = {
    "SAGDTrap": ("rho",),
    "SAMTrap": ("learning_rate", "radius"),
    "LeastSquares": (),
}


def _rebuild(case: dict, runs, seed: int) -> dict[str, np.ndarray]:
    """Rebuild each run's training set, final and average iterate from its key.

    The sweep derives a run's key as ``fold_in(fold_in(key(seed), group), run)`` and
    splits it into the training-set and population keys; the caller compares the
    rebuilt empirical risks with the sweep's records, so a change in that derivation
    fails a check instead of silently measuring other runs.
    """
    static = _static(case)
    steps: int = case["steps"] if "steps" in case else static["T"]
    traced = sorted(k for k in case["grid"] if k in ("rho", "learning_rate", "radius"))
    algorithm = case["optimizer"]

    @jax.jit
    def rebuild(groups, indices, values):
        def one(group, index, value):
            point = dict(zip(traced, value, strict=True))
            group_key = jax.random.fold_in(jax.random.key(seed), group)
            sample_key, _ = jax.random.split(jax.random.fold_in(group_key, index))
            problem = _build(case["problem"], static, point)
            if hasattr(problem, "sample_conditioned"):
                S = problem.sample_conditioned(sample_key)
            else:
                S = problem.sample(sample_key)
            result = run_fused(
                problem,
                algorithm,
                S,
                steps,
                learning_rate=point["learning_rate"],
                radius=point.get("radius", 0.0),
                maximizer=_maximizer(case.get("maximizer"), problem, S),
                suffix_starts=(1,),
                record_population=False,
                population_every_step=False,
            )
            return {"S": S, "final": result.final, "average": result.average}

        return jax.vmap(one)(groups, indices, values)

    values = np.stack([runs[k].to_numpy(np.float64) for k in traced], axis=1)
    out = rebuild(
        jnp.asarray(runs.group.to_numpy()),
        jnp.asarray(runs.run.to_numpy()),
        jnp.asarray(values),
    )
    return jax.tree_util.tree_map(np.asarray, out)


def _static(case: dict) -> dict:
    return {k: case["grid"][k][0] for k in ("n", "T", "d") if k in case["grid"]}


def _measure_all(case: dict, complete: bool, arguments, training_sets, iterates, keys):
    """Every measure (and F_S) at each iterate: one compiled program per problem."""
    static = _static(case)
    names = PROBLEM_ARGUMENTS[case["problem"]]

    @jax.jit
    def measure(arguments, training_sets, iterates, keys):
        def one(argument, S, w, key):
            problem = _build(
                case["problem"], static, dict(zip(names, argument, strict=True))
            )
            out = measure_point(problem, S, w, key, complete)
            out["empirical_risk"] = problem.empirical_risk(w, S)
            return out

        return jax.vmap(one)(arguments, training_sets, iterates, keys)

    out = measure(arguments, training_sets, iterates, keys)
    return jax.tree_util.tree_map(np.asarray, out)


# ----------------------------------------------------------- rank statistics


def kendall_tau(x, y) -> float:
    """Kendall's tau-b of two samples (NaN when either is constant)."""
    from scipy.stats import kendalltau

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    result = kendalltau(x, y)
    # scipy's stubs leave SignificanceResult's fields untyped.
    return float(result.statistic)  # pyright: ignore[reportAttributeAccessIssue]


def granulated_tau(table, measure: str, axes: list[str]) -> dict[str, float]:
    """Jiang et al.'s granulated Kendall coefficient, one value per axis.

    For each axis, the models are grouped by every other column of ``axes``, the
    optimizer and the seed index; the tau between the measure and the risk within
    each group (only that axis varies) is averaged over groups with at least two
    values. The sweep draws one training set per run, so models of one group share
    the seed index, not the training set.
    """
    out = {}
    for axis in axes:
        others = [c for c in axes if c != axis] + ["seed_index"]
        others += [c for c in ("optimizer",) if c in table and c not in axes]
        taus = [
            kendall_tau(group[measure], group["population_risk"])
            for _, group in table.groupby(others, dropna=False)
            if group[axis].nunique() >= 2
        ]
        taus = [t for t in taus if not math.isnan(t)]
        out[axis] = float(np.mean(taus)) if taus else math.nan
    return out


def _null_half_width(count: int) -> float:
    """Half-width of the 95% interval of Kendall's tau under independence."""
    if count < 2:
        return math.nan
    return 1.96 * math.sqrt(2 * (2 * count + 5) / (9 * count * (count - 1)))


def report_check(
    quantity: str, measured: float, half_width: float, samples: int, theory: str
) -> Check:
    """An informational row (kind ``report``): no theorem gives a criterion."""
    half = None if math.isnan(half_width) else float(half_width)
    return Check(
        quantity,
        "report",
        float(measured),
        half,
        float(measured),
        float(measured),
        int(samples),
        theory,
        "none (informational: no theorem gives a criterion)",
        REPORT,
    )


# ------------------------------------------------------------- Theorem 1 pair


def _theorem1_pair(settings: Settings) -> tuple[list[Check], dict]:
    """Measures at Theorem 1's flat ERM e_I and sharp ERM rho e_d, over seeds."""
    n, rho = 4, 0.25
    seeds = min(settings.seeds, 16 if settings.quick else 256)

    complete = not settings.quick

    @jax.jit
    def pair(keys):
        def one(key):
            problem = FlatERM(n=n, rho=rho)
            S = problem.sample_conditioned(key)
            shift = jnp.zeros(problem.d).at[-1].set(RADIUS)

            def at(w):
                measures = measure_point(
                    problem, S, w, jax.random.fold_in(key, 1), complete
                )
                measures["population_risk"] = problem.population_risk(w).value
                measures["saer_gap_exact"] = problem.empirical_risk(
                    w + shift, S
                ) - problem.empirical_risk(w, S)
                return measures

            points = jnp.stack([problem.flat_erm(S), problem.sharp_erm()])
            return jax.vmap(at)(points)

        return jax.vmap(one)(keys)

    out = jax.tree_util.tree_map(
        np.asarray, pair(jax.random.split(jax.random.key(14), seeds))
    )
    out = {
        "flat": {k: v[:, 0] for k, v in out.items()},
        "sharp": {k: v[:, 1] for k, v in out.items()},
    }
    flat, sharp = out["flat"], out["sharp"]
    risk_gap = flat["population_risk"] - sharp["population_risk"]
    exact_risk_gap = (1 - rho) ** 2 / 4
    saer_gap = flat["saer_gap_exact"] - sharp["saer_gap_exact"]
    exact_saer_gap = 0.5 * max(RADIUS - rho, 0.0) ** 2 - 0.5 * RADIUS**2
    checks = [
        make_check(
            "Thm 1 pair: F(e_I) - F(rho e_d)",
            "exact",
            risk_gap,
            f"(1-rho)^2/4 = {exact_risk_gap:.6g} > 0 (Theorem 1(iii))",
            np.all(np.abs(risk_gap - exact_risk_gap) <= 1e-12),
            "every seed within 1e-12: the flat ERM has the higher risk",
        ),
        make_check(
            f"Thm 1 pair: SAER gap at r={RADIUS}, e_I minus rho e_d",
            "exact",
            saer_gap,
            f"[r-rho]_+^2/2 - r^2/2 = {exact_saer_gap:.6g} < 0 (Theorem 1(i)-(ii))",
            np.all(np.abs(saer_gap - exact_saer_gap) <= 1e-12),
            "every seed within 1e-12: the paper's sharpness calls the bad ERM flatter",
        ),
    ]
    table = {}
    for measure in MEASURES if complete else QUICK_MEASURES:
        wrong = float(np.mean(flat[measure] < sharp[measure]))
        tied = float(np.mean(flat[measure] == sharp[measure]))
        table[measure] = {"flat_lower": wrong, "tied": tied}
        checks.append(
            report_check(
                f"Thm 1 pair: {measure} ranks e_I flatter (fraction of seeds)",
                wrong,
                math.nan,
                seeds,
                f"report; ties {tied:.2f}; a predictor of risk would give 0",
            )
        )
    return checks, table


# ---------------------------------------------------------------- experiment


def measures_predict(settings: Settings) -> Experiment:
    """Kendall rank correlation of every measure with the exact population risk."""
    import pandas as pd

    seeds = min(settings.seeds, 3 if settings.quick else 32)
    complete = not settings.quick
    names_used = MEASURES if complete else QUICK_MEASURES
    checks, table_rows = _theorem1_pair(settings)
    frames, mismatch = [], 0.0
    cases = _cases(settings)
    for problem_name in dict.fromkeys(case["problem"] for case in cases):
        parts = []
        for case in (c for c in cases if c["problem"] == problem_name):
            config = {k: v for k, v in case.items() if v is not None}
            runs = run_sweep_runs(
                settings,
                f"measures_{case['problem']}_{case['optimizer']}",
                seeds=seeds,
                **config,
            )
            rebuilt = _rebuild(case, runs, seed=0)
            last = int(runs.steps.iloc[0])
            for label, tau in (("final", last), ("average", 1)):
                frame = pd.DataFrame(
                    {
                        "population_risk": runs[f"population_risk_tau{tau}"],
                        "recorded_empirical_risk": runs[f"empirical_risk_tau{tau}"],
                        "optimizer": case["optimizer"],
                        "iterate": label,
                        "learning_rate": runs.learning_rate,
                        "radius": runs.radius if "radius" in runs else 0.0,
                        "seed_index": runs.seed_index,
                        "nonfinite": runs.nonfinite,
                    }
                )
                for name in PROBLEM_ARGUMENTS[problem_name]:
                    frame[f"argument_{name}"] = runs[name].to_numpy()
                parts.append((frame, rebuilt["S"], rebuilt[label]))
        frame = pd.concat([f for f, _, _ in parts], ignore_index=True)
        names = PROBLEM_ARGUMENTS[problem_name]
        arguments = np.zeros((len(frame), len(names)))
        for column, name in enumerate(names):
            arguments[:, column] = frame[f"argument_{name}"].to_numpy()
        measured = _measure_all(
            next(c for c in cases if c["problem"] == problem_name),
            complete,
            jnp.asarray(arguments),
            jnp.asarray(np.concatenate([S for _, S, _ in parts])),
            jnp.asarray(np.concatenate([w for _, _, w in parts])),
            jax.random.split(jax.random.key(7), len(frame)),
        )
        recorded = frame.recorded_empirical_risk.to_numpy()
        scale = np.maximum(np.abs(recorded), 1e-300)
        difference = np.abs(measured["empirical_risk"] - recorded) / scale
        mismatch = max(mismatch, float(np.max(difference)))
        for measure in names_used:
            frame[measure] = measured[measure]
        frame["problem"] = problem_name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    checks.insert(
        2,
        make_check(
            "rebuilt iterates: max relative |F_S - sweep's F_S|",
            "exact",
            mismatch,
            "0 (the same runs)",
            mismatch <= 1e-10,
            "<= 1e-10 over every run, final and averaged",
        ),
    )
    finite = table[~table.nonfinite]
    rows = []
    for problem, part in finite.groupby("problem", sort=False):
        for measure in names_used:
            overall = kendall_tau(part[measure], part.population_risk)
            granulated = granulated_tau(
                part, measure, ["learning_rate", "radius", "iterate"]
            )
            finite_taus = [v for v in granulated.values() if not math.isnan(v)]
            psi = float(np.mean(finite_taus)) if finite_taus else math.nan
            per_optimizer = {
                optimizer: kendall_tau(group[measure], group.population_risk)
                for optimizer, group in part.groupby("optimizer")
            }
            rows.append(
                {
                    "problem": problem,
                    "measure": measure,
                    "tau": overall,
                    "psi": psi,
                    **{f"psi_{k}": v for k, v in granulated.items()},
                    **{f"tau_{k}": v for k, v in per_optimizer.items()},
                    "models": len(part),
                }
            )
            if math.isnan(overall):
                note = (
                    "report; undefined: the measure or the risk is constant over "
                    f"these models (measure range {np.ptp(part[measure]):.3g}, risk "
                    f"range {np.ptp(part.population_risk):.3g})"
                )
            else:
                note = (
                    f"report; granulated Psi = {psi:.3f} ("
                    + ", ".join(f"{k} {v:.2f}" for k, v in granulated.items())
                    + ")"
                )
            checks.append(
                report_check(
                    f"Kendall tau({measure}, F), {problem}",
                    overall,
                    _null_half_width(len(part)),
                    len(part),
                    note,
                )
            )
    correlations = pd.DataFrame(rows)
    pair_table = pd.DataFrame(table_rows).T.reset_index(names="measure")

    def draw(ax):
        problems = list(correlations.problem.unique())
        width = 0.8 / len(problems)
        positions = np.arange(len(names_used))
        for j, problem in enumerate(problems):
            part = correlations[correlations.problem == problem].set_index("measure")
            ax.bar(
                positions + j * width,
                part.loc[list(names_used), "tau"].to_numpy(),
                width,
                label=problem,
            )
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(positions + 0.4 - width / 2)
        ax.set_xticklabels(names_used, rotation=70, ha="right", fontsize=6)

    figure = save_figure(
        settings,
        "measures_predict_kendall",
        draw,
        xlabel="measure",
        ylabel="Kendall tau with population risk",
        title="Which measures predict risk? (> 0: sharper = worse)",
        size=(7.2, 4.4),
    )
    return Experiment(
        "measures_predict",
        "Flatness measures against the exact population risk (Kendall tau)",
        checks,
        [figure],
        {
            "measures_predict": correlations,
            "measures_predict_models": table,
            "measures_predict_theorem1_pair": pair_table,
        },
    )
