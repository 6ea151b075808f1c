"""The theorems happen: SA-GD, SAM and GD on the paper's constructions (digest §7)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.optim import FunctionMaximizer, gd, sa_gd, sam
from flatjax.problems import AbstractProblem, SAGDTrap, SAMSharp
from flatjax.runner import run


def theorem3_run(T, rho=0.1, eta=0.25, r=None, n=3, maximizer="adversarial", seed=0):
    problem = SAGDTrap(n=n, T=T, rho=rho)
    S = problem.sample_conditioned(jax.random.key(seed))
    r = rho + 1 / (eta * math.sqrt(T)) if r is None else r
    if maximizer == "adversarial":
        oracle = FunctionMaximizer(problem.adversarial_maximizer(S))
    else:
        oracle = FunctionMaximizer(problem.extra_coordinate_maximizer())
    result = jax.jit(
        lambda S: run(
            problem,
            sa_gd(eta, r),
            S,
            T,
            maximizer=oracle,
            saer_radius=r,
            suffix_starts=range(1, T + 1),
        )
    )(S)
    return problem, S, r, result


@pytest.mark.parametrize("T", [16, 64])
def test_theorem3_trajectory_equals_the_closed_form(T):
    eta, rho = 0.25, 0.1
    problem, S, r, result = theorem3_run(T, rho=rho, eta=eta)
    index = int(problem.unseen_index(S))
    step = eta * (r - rho)
    # Suffix averages, digest §4.3 item 6: only block I, coordinate s (1-based):
    # -step * (T - max(tau, s + 1) + 1)_+ / (T - tau + 1).
    tau = np.arange(1, T + 1)[:, None]
    s = np.arange(1, T + 1)[None, :]
    block = -step * np.maximum(T - np.maximum(tau, s + 1) + 1, 0) / (T - tau + 1)
    expected = np.zeros((T, problem.d))
    expected[:, index * T : (index + 1) * T] = block
    np.testing.assert_allclose(result.suffix_averages, expected, rtol=0, atol=1e-12)
    final = np.zeros(problem.d)
    final[index * T : index * T + T - 1] = -step
    np.testing.assert_allclose(result.final, final, rtol=0, atol=1e-12)
    assert not bool(result.projection_acted)
    assert int(result.nonfinite_step) == -1


@pytest.mark.parametrize(
    "T, min_risk, max_risk",
    [(64, 0.0553614, 0.198986), (128, 0.0561610, 0.200743), (256, 0.0565628, 0.201621)],
)
def test_theorem3_reproduces_the_table_of_digest_7_3(T, min_risk, max_risk):
    _, _, r, result = theorem3_run(T)
    suffix = result.suffix_metrics
    # SAER of every suffix average is exactly (r - rho)^2 / 2 = 8 / T, F_S = 0.
    np.testing.assert_allclose(suffix["saer"], 8 / T, rtol=1e-12)
    assert jnp.all(suffix["empirical_risk"] == 0)
    risks = suffix["population_risk"]
    assert bool(jnp.all(suffix["population_exact"]))
    assert int(jnp.argmin(risks)) == 0 and int(jnp.argmax(risks)) == T - 1
    # The table prints 6 significant digits.
    assert float(risks[0]) == pytest.approx(min_risk, rel=1e-5)
    assert float(risks[-1]) == pytest.approx(max_risk, rel=1e-5)
    norm = float(result.metrics["iterate_norm"].max())
    assert norm == pytest.approx(math.sqrt((T - 1) / T), rel=1e-12)
    np.testing.assert_allclose(result.metrics["saer"], 8 / T, rtol=1e-12)


@pytest.mark.parametrize(
    "label, rho, r, maximizer",
    [
        ("r = rho", 0.1, 0.1, "adversarial"),
        ("rho threshold violated", 0.4, 0.5, "adversarial"),
        ("GD (r = 0)", 0.1, 0.0, "adversarial"),
    ],
)
def test_theorem3_controls_have_zero_risk(label, rho, r, maximizer):
    problem, _, _, result = theorem3_run(64, rho=rho, r=r, maximizer=maximizer)
    if label == "rho threshold violated":
        assert not problem.lower_bound_applies(0.25, r)
    assert float(result.suffix_metrics["population_risk"].max()) == 0.0


def test_theorem3_needs_the_adversarial_tie_break():
    # Another exact maximizer: SA-GD never touches block I, population risk equals
    # empirical risk, far below the adversarial run's.
    _, _, _, result = theorem3_run(64, maximizer="extra_coordinate")
    suffix = result.suffix_metrics
    np.testing.assert_allclose(
        suffix["population_risk"], suffix["empirical_risk"], rtol=1e-12, atol=1e-18
    )
    # The oracle is exact along this run: F_S^r equals the upper bound
    # 1/2 [|w(d)| + r - rho]^2.
    r, rho = 0.6, 0.1
    bound = 0.5 * (jnp.abs(result.final[-1]) + r - rho) ** 2
    assert float(result.metrics["saer"][-1]) == pytest.approx(float(bound), rel=1e-12)
    assert float(suffix["population_risk"][0]) < 0.01


@pytest.mark.parametrize("r", [0.05, 0.25, 0.5])
@pytest.mark.parametrize("eta", [0.1, 1.0, 3.0])
def test_theorem6_sam_stays_at_the_sharp_point(r, eta):
    problem = SAMSharp()
    S = problem.sample(None)
    result = run(problem, sam(eta, r), S, 20)
    assert jnp.all(result.suffix_averages == 0)
    gap = problem.saer(result.average, r) - problem.saer(problem.flat_minimizer(), r)
    assert float(gap) == pytest.approx(0.5 * r**2, abs=1e-16)


def test_theorem6_sa_gd_from_the_same_start_moves_into_the_flat_region():
    problem = SAMSharp()
    # F is increasing, so v = +r is the exact maximizer.
    result = run(
        problem,
        sa_gd(0.5, 0.25, FunctionMaximizer(lambda w, r: jnp.full_like(w, r))),
        problem.sample(None),
        20,
    )
    # w_{t+1} + r = (1 - eta)(w_t + r): the first step goes to -eta r, and the
    # iterates converge geometrically to -r, where the SAER reaches its minimum 0.
    assert float(result.final[0]) == pytest.approx(-0.25 + 0.25 * 0.5**19, rel=1e-12)
    assert float(problem.saer(result.final, 0.25)) < 1e-12


# ------------------------------------------------------------------------------
# Theorems 2 and 5 on random smooth convex rho-flat problems in the plane.


class FlatLeastSquares(AbstractProblem):
    """f(w, a) = 1/2 [|a.(w - w*)| - rho]_+^2, |a| <= 1: 1-smooth, rho-flat at w*."""

    n: int
    dtype: np.dtype
    w_star: jax.Array
    rho: float

    @property
    def d(self):
        return 2

    @property
    def beta(self):
        return 1.0

    @property
    def lipschitz(self):
        return 2.0

    def sample(self, key):
        a = jax.random.normal(key, (self.n, 2))
        return a / jnp.linalg.norm(a, axis=1, keepdims=True)

    def loss(self, w, z):
        return 0.5 * jnp.maximum(jnp.abs(z @ (w - self.w_star)) - self.rho, 0.0) ** 2

    def population_risk(self, w, key=None, *, num_samples=0):
        raise NotImplementedError


ANGLES = jnp.linspace(0, 2 * jnp.pi, 4096, endpoint=False)
CIRCLE = jnp.stack([jnp.cos(ANGLES), jnp.sin(ANGLES)], axis=1)


def grid_maximizer(problem, S):
    """Exact up to the grid: a convex function's maximum on a disk is on its circle."""

    def maximizer(w, radius):
        values = jax.vmap(lambda v: problem.empirical_risk(w + radius * v, S))(CIRCLE)
        return radius * CIRCLE[jnp.argmax(values)]

    return FunctionMaximizer(maximizer)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["sa_gd", "sam"])
def test_theorems_2_and_5_bounds_hold(seed, method):
    key_star, key_s = jax.random.split(jax.random.key(seed))
    w_star = 0.5 * jax.random.normal(key_star, (2,))
    problem = FlatLeastSquares(n=12, dtype=np.dtype("float64"), w_star=w_star, rho=0.1)
    S = problem.sample(key_s)
    eta, r, T = 0.25, 0.2, 40  # eta = 1/(4 beta)
    oracle = grid_maximizer(problem, S)
    optimizer = sa_gd(eta, r) if method == "sa_gd" else sam(eta, r)
    result = run(
        problem,
        optimizer,
        S,
        T,
        maximizer=oracle,
        saer_radius=r,
        record_population=False,
    )
    distance = float(jnp.linalg.norm(problem.initial_point() - w_star))
    bound = distance**2 / (eta * T) + 4 * problem.beta * max(r - 0.1, 0) ** 2
    if method == "sa_gd":
        assert float(result.suffix_metrics["saer"][0]) <= bound  # Theorem 2
    assert float(result.suffix_metrics["empirical_risk"][0]) <= bound  # Theorems 2, 5
    # Not vacuous: the run starts away from the flat minimum.
    assert float(result.metrics["empirical_risk"][0]) > 0


def test_gd_baseline_on_the_sagd_trap_stays_at_zero():
    problem = SAGDTrap(n=3, T=32, rho=0.1)
    S = problem.sample_conditioned(jax.random.key(0))
    result = run(problem, gd(0.25), S, 32)
    assert jnp.all(result.final == 0)
