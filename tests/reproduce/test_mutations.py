"""Mutation suite of ``flatjax reproduce``: each planted fault must make a verdict FAIL.

Each fault is a realistic bug planted by ``monkeypatch`` (the production code has no
fault-injection hook). The experiment meant to catch it runs at the ``tiny`` sizes
in a fresh output folder (the sweeps' stored results must not be reused), and at
least one of its verdicts must be FAIL. With no fault planted, the same experiments
have no FAIL (``test_no_fault_no_fail``), so a kill is the fault's doing.

Faults are planted at public levels that survive a rewrite of the fused kernels
(problem methods and properties, ``flatjax.bounds`` functions, the oracle factory,
samplers), except two marked ``internal``: ``suffix_off_by_one`` patches the runner's
private ``_suffix_averages`` (used by the generic and the fused paths) and
``sam_unnormalized`` the fused runner's ``make_optimizer`` (and turns SAMTrap's fused
kernel off so that the transform is used).

The kill matrix (fault x experiment) is printed by ``test_kill_matrix`` and kept in
``docs/reproduce_mutations.md``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import flatjax.bounds
import flatjax.reproduce._theorem3 as theorem3_module
import flatjax.reproduce._upper_bounds as upper_bounds_module
import flatjax.runner._fused as fused_module
import flatjax.runner._runner as runner_module
from flatjax.optim import sam
from flatjax.problems import FlatERM, SAGDTrap, SAMSharp, SAMTrap
from flatjax.reproduce import EXPERIMENTS
from flatjax.reproduce._registry import run_experiment
from flatjax.reproduce._verdicts import Settings
from flatjax.sweep import clear_compile_cache

SEEDS = 4  # test_reproduce.TINY_SEEDS: the fault-free baseline runs there


def _wrong_block_oracle(monkeypatch):
    # Off by one: the oracle perturbs block I + 1 (a block the training set sees).
    from flatjax.problems._sagd_trap import AdversarialMaximizer

    def oracle(self, S):
        return AdversarialMaximizer(self, (self.unseen_index(S) + 1) % 2**self.n)

    monkeypatch.setattr(SAGDTrap, "adversarial_maximizer", oracle)


def _sam_unnormalized(monkeypatch):
    # SAM's ascent r g instead of r g/||g||: the 1e-16 trigger never moves anything.
    monkeypatch.setattr(SAMTrap, "fused_kernel", lambda self, *args, **kw: None)
    original = fused_module.make_optimizer

    def make(name, **hyperparameters):
        if name == "sam":
            return sam(**hyperparameters, ascent="unnormalized")
        return original(name, **hyperparameters)

    monkeypatch.setattr(fused_module, "make_optimizer", make)


def _suffix_off_by_one(monkeypatch):
    # Suffix averages divided by T - tau + 2 instead of T - tau + 1.
    def averages(sums, steps, taus, dtype):
        counts = (steps - taus + 2).astype(dtype)
        return jax.tree_util.tree_map(
            lambda x: x / counts.reshape(-1, *[1] * (x.ndim - 1)), sums
        )

    monkeypatch.setattr(runner_module, "_suffix_averages", averages)
    monkeypatch.setattr(fused_module, "_suffix_averages", averages)


def _population_scaled(monkeypatch):
    original = FlatERM.population_risk

    def risk(self, w, key=None, *, num_samples=100_000):
        value = original(self, w, key, num_samples=num_samples)
        return value._replace(value=1.05 * value.value)

    monkeypatch.setattr(FlatERM, "population_risk", risk)


def _stability_scaled(monkeypatch):
    original = upper_bounds_module.loo_stability

    def stability(*args, **kwargs):
        result = original(*args, **kwargs)
        return result._replace(epsilon=1e6 * result.epsilon)

    monkeypatch.setattr(upper_bounds_module, "loo_stability", stability)


def _theorem7_bound_weakened(monkeypatch):
    original = flatjax.bounds.theorem7_sam_lower_bound
    monkeypatch.setattr(
        flatjax.bounds,
        "theorem7_sam_lower_bound",
        lambda **kw: original(**kw) / 100.0,
    )


def _theorem2_bound_too_strong(monkeypatch):
    # A factor lost: the bound divided by 100 (below what SA-GD/SAM reach).
    original = flatjax.bounds.theorem2_sagd_saer_bound
    monkeypatch.setattr(
        flatjax.bounds,
        "theorem2_sagd_saer_bound",
        lambda **kw: original(**kw) / 100.0,
    )


def _trigger_constant(monkeypatch):
    # The trigger's offset delta_1 (about 1e-18 here) lost, as when it is computed in
    # float32 and underflows: the gradient at w_1 = 0 vanishes and SAM never moves.
    original = SAMTrap.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        object.__setattr__(self, "delta1", 0.0 * self.delta1)

    monkeypatch.setattr(SAMTrap, "__init__", init)


def _learning_rate_changed(monkeypatch):
    original = theorem3_module.run_fused

    def run(*args, learning_rate, **kwargs):
        return original(*args, learning_rate=1.01 * learning_rate, **kwargs)

    monkeypatch.setattr(theorem3_module, "run_fused", run)


def _projection_radius(monkeypatch):
    # The domain's radius wrong (1/2 instead of 1): projection acts on Theorem 3's run.
    monkeypatch.setattr(SAGDTrap, "domain_radius", property(lambda self: 0.5))


def _conditioned_on_wrong_event(monkeypatch):
    # Theorem 7's sampler conditioned on "some coordinate unseen" (Theorem 1's event)
    # instead of "exactly one".
    from flatjax.problems._base import rejection_sample

    def sample_conditioned(self, key):
        return rejection_sample(
            self.sample, lambda S: jnp.any(jnp.all(S == 0, axis=0)), key
        )

    monkeypatch.setattr(SAMTrap, "sample_conditioned", sample_conditioned)


def _sampler_biased(monkeypatch):
    def sample(self, key):
        bits = jax.random.bernoulli(key, 0.4, (self.n, 2**self.n))
        return bits.astype(self.dtype)

    monkeypatch.setattr(FlatERM, "sample", sample)


def _sam_not_started_at_zero(monkeypatch):
    # Initialization at a tiny nonzero point: SAM's zero-gradient no-op never applies.
    monkeypatch.setattr(
        SAMSharp, "initial_point", lambda self: jnp.full((1,), 1e-3, self.dtype)
    )


@dataclasses.dataclass(frozen=True)
class Fault:
    """A planted fault and the experiments meant to catch it."""

    name: str
    plant: object
    experiments: tuple[str, ...]
    internal: bool = False


FAULTS = (
    Fault("oracle tie-break: wrong block", _wrong_block_oracle, ("theorem3",)),
    Fault("SAM normalization dropped", _sam_unnormalized, ("theorem7",), internal=True),
    Fault(
        "suffix averages off by one",
        _suffix_off_by_one,
        ("theorem3",),
        internal=True,
    ),
    Fault(
        "population risk scaled 1.05",
        _population_scaled,
        ("theorem1", "measures_predict"),
    ),
    Fault("stability measure scaled", _stability_scaled, ("upper_bounds",)),
    Fault("Thm 7 bound weakened 100x", _theorem7_bound_weakened, ("theorem7",)),
    Fault("Thm 2 bound too strong 100x", _theorem2_bound_too_strong, ("theorems2_5",)),
    Fault("trigger constant delta_1 lost", _trigger_constant, ("theorem7",)),
    Fault("learning rate off by 1%", _learning_rate_changed, ("theorem3",)),
    Fault("domain radius 1/2 (projection)", _projection_radius, ("theorem3",)),
    Fault(
        "conditional sampler: wrong event", _conditioned_on_wrong_event, ("theorem7",)
    ),
    Fault("sampler biased (p = 0.4)", _sampler_biased, ("theorem1",)),
    Fault("SAM started off zero", _sam_not_started_at_zero, ("theorem6", "algorithms")),
)

RESULTS: dict[tuple[str, str], bool] = {}


@pytest.fixture(autouse=True)
def _no_compiled_fault():
    # The sweep engine keeps compiled programs per process (keyed on the sweep's
    # configuration, not on the library's code): a program compiled with a fault
    # planted must not be reused by a later test in the same worker, nor a clean
    # one by a fault (the fault would then not be planted at all).
    clear_compile_cache()
    jax.clear_caches()
    yield
    clear_compile_cache()
    jax.clear_caches()


def _failed(name: str, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    experiment = run_experiment(name, Settings("tiny", SEEDS, out, False))
    return [c.quantity for c in experiment.checks if c.failed]


# One test per (fault, experiment) pair: every pair must kill, and the pairs spread
# over the xdist workers one by one (a fault with two experiments is two tests).
PAIRS = [
    pytest.param(fault, name, id=f"{fault.name} | {name}")
    for fault in FAULTS
    for name in fault.experiments
]


@pytest.mark.parametrize("fault, name", PAIRS)
def test_fault_is_killed(fault, name, monkeypatch, tmp_path):
    fault.plant(monkeypatch)
    failed = _failed(name, tmp_path / name)
    RESULTS[(fault.name, name)] = bool(failed)
    assert failed, f"{fault.name!r} survived experiment {name!r}"


# test_reproduce.py runs every experiment fault-free at these settings (tiny, SEEDS)
# by default; this per-experiment version is kept under -m slow.
@pytest.mark.slow
@pytest.mark.parametrize(
    "name", sorted({e for f in FAULTS for e in f.experiments} - {"algorithms"})
)
def test_no_fault_no_fail(name, tmp_path):
    assert not _failed(name, tmp_path / name)


def test_every_experiment_kills_a_fault():
    assert {e for f in FAULTS for e in f.experiments} == set(EXPERIMENTS)
    assert len(FAULTS) >= 10


def test_kill_matrix(capsys):
    """Print fault x experiment (after the faults above ran in this session)."""
    if not RESULTS:
        pytest.skip("run together with test_fault_is_killed")
    names = list(EXPERIMENTS)
    header = "| fault | " + " | ".join(names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for fault in FAULTS:
        cells = []
        for name in names:
            result = RESULTS.get((fault.name, name))
            verdict = "killed" if result else "SURVIVED"
            cells.append("-" if result is None else verdict)
        tag = " (internal)" if fault.internal else ""
        lines.append(f"| {fault.name}{tag} | " + " | ".join(cells) + " |")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert all(RESULTS.values())
