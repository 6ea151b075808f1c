"""Properties, exact values and structure of every problem (issue: problems)."""

import math
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flatjax.problems import (
    ClassicERM,
    FlatERM,
    LeastSquares,
    SAGDTrap,
    SAMSharp,
    SAMTrap,
    SquaredHinge,
)

# Small instances of every problem. Sizes keep d in the hundreds so that each
# property check runs in well under a second.
PROBLEMS = {
    "flat_erm": lambda: FlatERM(n=3, rho=0.2),
    "flat_erm_rho0": lambda: FlatERM(n=3, rho=0.0),
    "classic_erm": lambda: ClassicERM(n=3),
    "sagd_trap": lambda: SAGDTrap(n=3, T=4, rho=0.1),
    "sam_sharp": lambda: SAMSharp(n=2),
    "sam_trap": lambda: SAMTrap(n=6, T=6, learning_rate=1 / 24, radius=0.5),
    "least_squares": lambda: LeastSquares(d=5, n=7),
    "squared_hinge": lambda: SquaredHinge(d=5, n=7, margin=0.6),
}


def random_ball_points(key, count, d, radius=1.0):
    """Points uniform in direction with norms spread over [0, radius]."""
    dir_key, norm_key = jax.random.split(key)
    g = jax.random.normal(dir_key, (count, d))
    g = g / jnp.linalg.norm(g, axis=1, keepdims=True)
    return g * radius * jax.random.uniform(norm_key, (count, 1))


def point_pairs_and_examples(problem, seed, count=48):
    key_u, key_v, key_s = jax.random.split(jax.random.key(seed), 3)
    u = random_ball_points(key_u, count, problem.d)
    v = random_ball_points(key_v, count, problem.d)
    # Concentrate half of the points on the block coordinates that the losses of
    # Theorems 3 and 7 care about: random signs make the ReLU kinks active.
    S = problem.sample(key_s)
    z = S[jnp.arange(count) % problem.n]
    return u, v, z


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nonnegative_convex_smooth_lipschitz(name, seed):
    problem = PROBLEMS[name]()
    u, v, z = point_pairs_and_examples(problem, seed)
    loss = jax.vmap(problem.loss)
    grad = jax.vmap(jax.grad(problem.loss))
    fu, fv = loss(u, z), loss(v, z)
    assert jnp.all(fu >= 0) and jnp.all(fv >= 0)
    # Convexity along chords, at three interior points of each chord; tolerance is
    # float64 rounding of values of order 1.
    for theta in (0.25, 0.5, 0.8):
        mid = theta * u + (1 - theta) * v
        assert jnp.all(loss(mid, z) <= theta * fu + (1 - theta) * fv + 1e-12)
    gu, gv = grad(u, z), grad(v, z)
    ratio = jnp.linalg.norm(gu - gv, axis=1) / jnp.linalg.norm(u - v, axis=1)
    assert jnp.all(ratio <= problem.beta * (1 + 1e-9)), float(ratio.max())
    assert jnp.all(jnp.linalg.norm(gu, axis=1) <= problem.lipschitz * (1 + 1e-9))
    assert jnp.all(jnp.isfinite(gu))


def test_sam_trap_smoothness_is_attained_by_the_chain():
    # The smoothness check above would pass for a loss that is much smoother than
    # claimed; make sure SAMTrap's chain really has curvature above 1 (f1 alone),
    # i.e. that beta = 6 is not vacuous for the implementation.
    problem = SAMTrap(n=6, T=6, learning_rate=1 / 24, radius=0.5)
    w = jnp.zeros(problem.d).at[1].set(0.3)  # block 0, position 2: chain link active
    z = jnp.ones(2**problem.n)
    e = jnp.zeros(problem.d).at[1].set(1.0)
    hessian_diag = jax.jvp(lambda x: jax.grad(problem.loss)(x, z), (w,), (e,))[1][1]
    assert hessian_diag > 1.9  # 1 (f1) + 1 (link j=2) + delta^2 (link j=3)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_fast_empirical_risk_equals_vmapped_definition(name):
    problem = PROBLEMS[name]()
    key_w, key_s = jax.random.split(jax.random.key(7))
    S = problem.sample(key_s)
    points = random_ball_points(key_w, 16, problem.d)

    def reference(w):
        return jnp.mean(jax.vmap(problem.loss, in_axes=(None, 0))(w, S))

    fast = jax.vmap(jax.value_and_grad(problem.empirical_risk), in_axes=(0, None))
    fast_values, fast_grads = fast(points, S)
    ref_values, ref_grads = jax.vmap(jax.value_and_grad(reference))(points)
    # Both are sums of the same terms in another order: float64 rounding only.
    np.testing.assert_allclose(fast_values, ref_values, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fast_grads, ref_grads, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("name", ["flat_erm", "flat_erm_rho0", "sagd_trap"])
def test_gradient_finite_where_the_square_root_vanishes(name):
    problem = PROBLEMS[name]()
    S = problem.sample(jax.random.key(0))
    w = jnp.zeros(problem.d)
    g = jax.grad(problem.empirical_risk)(w, S)
    assert jnp.all(g == 0)
    g1 = jax.grad(problem.loss)(w, S[0])
    assert jnp.all(g1 == 0)


# ------------------------------------------------------------------------------
# Flatness of the claimed flat minima: the loss stays 0 on the whole ball.


def sphere(key, count, d, radius):
    g = jax.random.normal(key, (count, d))
    return radius * g / jnp.linalg.norm(g, axis=1, keepdims=True)


def assert_flat(loss_of_v, d, radius, key):
    boundary = sphere(key, 256, d, radius)
    inside = boundary * jax.random.uniform(key, (256, 1))
    for v in (boundary, inside):
        # On the boundary s = rho^2 up to rounding, so the loss is at most ~1e-33.
        assert jnp.all(jax.vmap(loss_of_v)(v) <= 1e-30)


@pytest.mark.parametrize("rho", [0.1, 0.3, 0.5])
def test_flat_erm_flat_minima(rho):
    problem = FlatERM(n=3, rho=rho)
    S = problem.sample_conditioned(jax.random.key(1))
    e_I = problem.flat_erm(S)
    # e_I is rho-flat for F_S; 0 is rho-flat for every example.
    assert_flat(
        lambda v: problem.empirical_risk(e_I + v, S), problem.d, rho, jax.random.key(2)
    )
    for z in S:
        assert_flat(
            lambda v, z=z: problem.loss(v, z), problem.d, rho, jax.random.key(3)
        )
    # Just outside the radius along the always-active coordinate, the loss is positive.
    outside = e_I.at[-1].add(rho + 1e-3)
    assert problem.empirical_risk(outside, S) > 0


@pytest.mark.parametrize("rho", [0.0, 0.25])
def test_sagd_trap_zero_is_flat(rho):
    problem = SAGDTrap(n=3, T=4, rho=rho)
    S = problem.sample(jax.random.key(4))
    assert_flat(
        lambda v: problem.empirical_risk(v, S), problem.d, rho, jax.random.key(5)
    )
    assert problem.empirical_risk(jnp.zeros(problem.d).at[-1].set(rho + 1e-3), S) > 0


def test_sam_sharp_flat_minimizer():
    problem = SAMSharp()
    w_star = problem.flat_minimizer()
    for v in jnp.linspace(-0.5, 0.5, 101):
        assert problem.loss(w_star + v, jnp.zeros(1)) == 0
    assert problem.loss(jnp.array([1e-3]), jnp.zeros(1)) > 0


def test_squared_hinge_flat_minimizer():
    problem = SquaredHinge(d=6, n=32, margin=0.5)
    S = problem.sample(jax.random.key(6))
    w_star = problem.population_minimizer()
    assert_flat(
        lambda v: problem.empirical_risk(w_star + v, S),
        problem.d,
        float(problem.rho),
        jax.random.key(7),
    )
    assert float(problem.population_risk(w_star).value) == 0.0


# ------------------------------------------------------------------------------
# Exact values of the paper digest §7.


@pytest.mark.parametrize(
    "n, unseen, exactly_one",
    [
        (6, 0.63501, 0.37078),
        (8, 0.63284, 0.36860),
        (10, 0.63230, 0.36806),
        (12, 0.63217, 0.36792),
    ],
)
def test_event_probabilities_digest_7_1(n, unseen, exactly_one):
    # The table prints 5 decimals.
    assert FlatERM(n=n).good_event_probability == pytest.approx(unseen, abs=5e-6)
    assert SAGDTrap(n=n, T=1).good_event_probability == pytest.approx(unseen, abs=5e-6)
    trap = SAMTrap(n=n, T=6, learning_rate=0.01, radius=0.01)
    assert trap.good_event_probability == pytest.approx(exactly_one, abs=5e-6)


@pytest.mark.parametrize("rho", [0.0, 0.1, 0.25, 0.5])
def test_flat_erm_values_digest_7_2(rho):
    problem = FlatERM(n=4, rho=rho)
    S = problem.sample_conditioned(jax.random.key(11))
    e_I, sharp = problem.flat_erm(S), problem.sharp_erm()
    assert problem.empirical_risk(e_I, S) == 0
    assert float(problem.population_risk(e_I).value) == pytest.approx(
        0.25 * (1 - rho) ** 2, abs=1e-15
    )
    assert problem.empirical_risk(sharp, S) == 0
    assert float(problem.population_risk(sharp).value) == 0
    for delta in (0.05, 0.3):
        # The SAER of the sharp ERM, delta^2/2, is attained at delta * e_d.
        value = problem.empirical_risk(sharp.at[-1].add(delta), S)
        assert float(value) == pytest.approx(0.5 * delta**2, rel=1e-12)
    for r in (0.0, 0.3, 0.7):
        # The SAER of e_I, 1/2 [r - rho]_+^2, is attained at r * e_d.
        value = problem.empirical_risk(e_I.at[-1].add(r), S)
        assert float(value) == pytest.approx(0.5 * max(r - rho, 0) ** 2, abs=1e-15)
    assert problem.population_minimizer().sum() == 0


def test_flat_erm_control_rho_one_closes_the_gap():
    problem = FlatERM(n=4, rho=1.0, check_theorem=False)
    S = problem.sample_conditioned(jax.random.key(12))
    assert float(problem.population_risk(problem.flat_erm(S)).value) == 0.0


def test_classic_erm_values():
    problem = ClassicERM(n=4)
    S = problem.sample_conditioned(jax.random.key(13))
    bad = problem.bad_erm(S)
    assert problem.empirical_risk(bad, S) == 0
    assert float(problem.population_risk(bad).value) == 0.25


@pytest.mark.parametrize("r", [0.0, 0.1, 0.25, 0.5])
def test_sam_sharp_gap_digest_7_4(r):
    problem = SAMSharp()
    zero, w_star = problem.initial_point(), problem.flat_minimizer()
    gap = problem.saer(zero, r) - problem.saer(w_star, r)
    assert float(gap) == pytest.approx(0.5 * r**2, abs=1e-16)
    assert jax.grad(problem.empirical_risk)(zero, problem.sample(None))[0] == 0


@pytest.mark.parametrize("n, T", [(6, 16), (6, 128)])
@pytest.mark.parametrize("eta", [1 / 24, 2.0])
def test_sam_trap_constants_fixed_point(n, T, eta):
    r = 1 / (2 * eta * math.sqrt(T))
    problem = SAMTrap(n=n, T=T, learning_rate=eta, radius=r)
    d = problem.d
    lam = r / (4 * d * (d - 1))
    delta1, gamma = 0.0, 0.0
    for _ in range(200):  # the paper's circular definitions, iterated
        gamma = lam / (max(1.0, eta) * (r + delta1))
        delta1 = eta * gamma * r / (2 * math.sqrt(d) - eta * gamma)
    assert float(problem.lambda_) == pytest.approx(lam, rel=1e-15)
    assert float(problem.delta1) == pytest.approx(delta1, rel=1e-13)
    assert float(problem.gamma) == pytest.approx(gamma, rel=1e-13)
    assert float(problem.delta1) <= float(problem.lambda_) / (2 * math.sqrt(d))


def test_sam_trap_realizer_has_zero_loss_for_every_example():
    problem = SAMTrap(n=6, T=8, learning_rate=1 / 24, radius=0.5)
    w_star = problem.realizer()
    Z = jax.random.bernoulli(jax.random.key(3), 0.5, (512, 2**problem.n)).astype(
        jnp.float64
    )
    Z = jnp.concatenate([Z, jnp.zeros((1, 64)), jnp.ones((1, 64))])
    assert jnp.all(jax.vmap(problem.loss, in_axes=(None, 0))(w_star, Z) == 0)
    assert float(problem.population_risk(w_star).value) == 0


def test_sam_trap_initial_gradient_is_the_tiny_trigger():
    # At w_1 = 0 only the trigger is active: grad F_S(0) = delta1 * gamma * v_S.
    problem = SAMTrap(n=6, T=16, learning_rate=1 / 24, radius=0.5)
    S = problem.sample_conditioned(jax.random.key(5))
    g = jax.grad(problem.empirical_risk)(problem.initial_point(), S)
    kappa = 1 / (2 * (problem.d - 1))
    v_S = jnp.mean(jnp.where(S == 1, 1.0, -kappa), axis=0)
    expected = jnp.zeros(problem.d).at[:-1:16].set(v_S).at[-1].set(1.0)
    np.testing.assert_allclose(g, problem.delta1 * problem.gamma * expected, rtol=1e-12)
    assert 0 < float(jnp.linalg.norm(g)) < 1e-15


# ------------------------------------------------------------------------------
# Population risk: exact against Monte Carlo, and the Monte Carlo fallback.


def monte_carlo_risk(problem, w, key, count=200_000):
    z = jax.vmap(problem.sample)(jax.random.split(key, count // problem.n))
    z = z.reshape(-1, z.shape[-1])
    values = jax.vmap(problem.loss, in_axes=(None, 0))(w, z)
    return float(values.mean()), float(values.std() / math.sqrt(values.shape[0]))


@pytest.mark.parametrize(
    "name", ["flat_erm", "classic_erm", "sagd_trap", "least_squares", "squared_hinge"]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_population_risk_matches_monte_carlo(name, seed):
    problem = PROBLEMS[name]()
    key_w, key_mc = jax.random.split(jax.random.key(100 + seed))
    w = random_ball_points(key_w, 1, problem.d)[0]
    risk = problem.population_risk(w)
    assert bool(risk.exact) and float(risk.stderr) == 0
    mean, se = monte_carlo_risk(problem, w, key_mc)
    assert abs(float(risk.value) - mean) <= 4 * se, (float(risk.value), mean, se)


def test_sam_trap_population_risk_exact_and_monte_carlo():
    problem = SAMTrap(n=3, T=4, learning_rate=0.1, radius=0.5, check_theorem=False)
    w = random_ball_points(jax.random.key(8), 1, problem.d)[0]
    # Make the tiny trigger visible: it is the only random term besides f1.
    w = w.at[-1].set(0.3)
    exact = problem.population_risk(w)
    assert bool(exact.exact)
    mean, se = monte_carlo_risk(problem, w, jax.random.key(9))
    assert abs(float(exact.value) - mean) <= 4 * se
    small = SAMTrap(
        n=3, T=4, learning_rate=0.1, radius=0.5, check_theorem=False, max_support=2
    )
    estimate = small.population_risk(w, jax.random.key(10), num_samples=50_000)
    assert not bool(estimate.exact) and float(estimate.stderr) >= 0
    assert (
        abs(float(estimate.value) - float(exact.value))
        <= 4 * float(estimate.stderr) + 1e-18
    )


def test_monte_carlo_fallback_agrees_and_is_labelled():
    exact_problem = FlatERM(n=3, rho=0.2)
    mc_problem = FlatERM(n=3, rho=0.2, max_support=2)
    w = random_ball_points(jax.random.key(21), 1, exact_problem.d)[0]
    exact = exact_problem.population_risk(w)
    estimate = mc_problem.population_risk(w, jax.random.key(22), num_samples=200_000)
    assert bool(exact.exact) and not bool(estimate.exact)
    assert float(estimate.stderr) > 0
    assert abs(float(estimate.value) - float(exact.value)) <= 4 * float(estimate.stderr)


def test_large_support_without_key_is_an_error_not_a_wrong_value():
    problem = FlatERM(n=3, rho=0.2, max_support=2)
    w = jnp.full(problem.d, 0.2)
    with pytest.raises(Exception, match="pass `key=`"):
        jax.block_until_ready(problem.population_risk(w))


def test_sagd_trap_population_risk_closed_form_on_block_I():
    # Along SA-GD's trajectory only block I is non-zero and non-positive:
    # F(w) = 1/4 [||w^(I)|| - rho]_+^2 (digest §4.3).
    problem = SAGDTrap(n=3, T=8, rho=0.1)
    S = problem.sample_conditioned(jax.random.key(2))
    index = int(problem.unseen_index(S))
    block = -jnp.linspace(0.05, 0.2, problem.T)
    start = index * problem.T
    w = jnp.zeros(problem.d).at[start : start + problem.T].set(block)
    expected = 0.25 * max(float(jnp.linalg.norm(block)) - 0.1, 0.0) ** 2
    assert float(problem.population_risk(w).value) == pytest.approx(expected, rel=1e-13)
    assert problem.empirical_risk(w, S) == 0


# ------------------------------------------------------------------------------
# Sampling: event frequencies, exact conditioning, jit and vmap.


@pytest.mark.parametrize(
    "problem",
    [
        FlatERM(n=4),
        SAGDTrap(n=4, T=1),
        SAMTrap(n=6, T=6, learning_rate=0.01, radius=0.01),
    ],
    ids=["flat_erm", "sagd_trap", "sam_trap"],
)
def test_good_event_frequency(problem):
    keys = jax.random.split(jax.random.key(31), 4096)
    hits = jax.vmap(lambda k: problem.good_event(problem.sample(k)))(keys)
    p = problem.good_event_probability
    se = math.sqrt(p * (1 - p) / 4096)
    assert abs(float(hits.mean()) - p) <= 4 * se
    conditioned = jax.vmap(problem.sample_conditioned)(keys[:512])
    assert jnp.all(jax.vmap(problem.good_event)(conditioned))


def test_conditioned_sampling_is_the_exact_conditional_distribution():
    # K = number of unseen coordinates is Binomial(2^n, 2^-n); given K >= 1 its mean
    # is E[K] / P(K >= 1) = 1 / p.
    problem = FlatERM(n=4)
    keys = jax.random.split(jax.random.key(41), 4096)
    S = jax.vmap(problem.sample_conditioned)(keys)
    counts = jnp.sum(jnp.all(S == 0, axis=1), axis=1)
    p = problem.good_event_probability
    mean = 1 / p
    second = (1 - 2**-4 + 1) / p  # E[K^2] = Var + mean^2 = (1 - 2^-n) + 1
    se = math.sqrt((second - mean**2) / 4096)
    assert abs(float(counts.mean()) - mean) <= 4 * se
    # Given the unseen set U, every other column is uniform on the non-zero columns
    # of {0,1}^n, with n / (2 (1 - 2^-n)) ones on average.
    ones = jnp.sum(S, axis=(1, 2))
    expected_ones = (2**4 - counts) * (4 / 2) / (1 - 2**-4)
    residual = ones - expected_ones
    assert abs(float(residual.mean())) <= 4 * float(residual.std()) / math.sqrt(4096)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_vmap_over_keys_equals_python_loop(name):
    problem = PROBLEMS[name]()
    keys = jax.random.split(jax.random.key(51), 64)
    w = random_ball_points(jax.random.key(52), 1, problem.d)[0]

    @jax.jit
    def one(key):
        S = problem.sample(key)
        return S, problem.empirical_risk(w, S)

    batched_S, batched = jax.vmap(one)(keys)
    looped = [one(k) for k in keys]
    # The training sets are bit-identical; the risks may differ in the last bit only,
    # because XLA sums a batched matrix product in another order (1e-15 relative).
    np.testing.assert_array_equal(batched_S, jnp.stack([S for S, _ in looped]))
    np.testing.assert_allclose(batched, jnp.stack([r for _, r in looped]), rtol=1e-15)


def test_problems_are_pytrees_with_traced_rho():
    # rho is an array field: a vmap over rho builds one problem per value.
    rhos = jnp.array([0.0, 0.1, 0.4])

    def risk(rho):
        problem = FlatERM(n=3, rho=rho)
        return problem.population_risk(jnp.zeros(problem.d).at[0].set(0.9)).value

    np.testing.assert_allclose(
        jax.vmap(risk)(rhos), 0.25 * (0.9 - rhos) ** 2, rtol=1e-13
    )
    assert isinstance(FlatERM(n=3), eqx.Module)


# ------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: FlatERM(n=0), ValueError, r"FlatERM\(n=...\)` must be >= 1, got 0"),
        (lambda: FlatERM(n=2.5), TypeError, r"n=...\)` must be an int"),
        (
            lambda: FlatERM(n=3, rho=0.7),
            ValueError,
            r"rho=...\)` must be <= 0.5, got 0.7",
        ),
        (lambda: FlatERM(n=3, rho=-0.1), ValueError, r"rho=...\)` must be >= 0.0"),
        (
            lambda: FlatERM(n=3, rho=float("nan")),
            ValueError,
            "rho=...\\)` must be finite",
        ),
        (lambda: FlatERM(n=3, dtype=jnp.int32), TypeError, "floating dtype"),
        (
            lambda: SAGDTrap(n=3, T=0),
            ValueError,
            r"SAGDTrap\(T=...\)` must be >= 1, got 0",
        ),
        (lambda: SAGDTrap(n=40, T=1), ValueError, r"would need about [\d,]+ bytes"),
        (lambda: FlatERM(n=40), ValueError, r"would need about [\d,]+ bytes"),
        (
            lambda: SAMTrap(n=5, T=8, learning_rate=0.1, radius=0.1),
            ValueError,
            r"n=...\)` must be >= 6",
        ),
        (
            lambda: SAMTrap(n=6, T=5, learning_rate=0.1, radius=0.1),
            ValueError,
            r"T=...\)` must be >= 6",
        ),
        (
            lambda: SAMTrap(n=6, T=16, learning_rate=1.0, radius=1.0),
            ValueError,
            "learning_rate \\* radius <= 1/\\(2\\*sqrt\\(T\\)\\)",
        ),
        (
            lambda: SAMTrap(n=6, T=16, learning_rate=-1.0, radius=0.1),
            ValueError,
            "learning_rate=...\\)` must be > 0",
        ),
        (
            lambda: SAMTrap(
                n=6, T=16, learning_rate=0.1, radius=0.1, dtype=jnp.float32
            ),
            ValueError,
            "must be float64",
        ),
        (
            lambda: SAMTrap(n=6, T=16, learning_rate=0.1, radius=0.1, delta=0.0),
            ValueError,
            "delta=...\\)` must lie in \\(0, 1\\]",
        ),
        (
            lambda: LeastSquares(d=3, n=4, w_star=jnp.ones(3)),
            ValueError,
            "w_star=...\\)` must lie in the unit ball",
        ),
        (
            lambda: LeastSquares(d=3, n=4, w_star=jnp.ones(2) / 4),
            ValueError,
            "w_star=...\\)` must have shape",
        ),
        (lambda: SquaredHinge(d=2, n=4), ValueError, "d=...\\)` must be >= 3"),
        (
            lambda: SquaredHinge(d=4, n=4, margin=1.0),
            ValueError,
            "margin=...\\)` must be < 1.0",
        ),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_unseen_index_without_the_good_event_is_an_error():
    problem = FlatERM(n=2)
    S = jnp.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]])  # nothing unseen
    with pytest.raises(Exception, match="sample_conditioned"):
        jax.block_until_ready(problem.unseen_index(S))


def test_float64_without_x64_is_refused_loudly():
    code = """
import flatjax
try:
    flatjax.FlatERM(n=3)
except ValueError as e:
    print('REFUSED', e)
p = flatjax.FlatERM(n=3, dtype='float32')
print('OK32', p.rho.dtype)
try:
    flatjax.SAMTrap(n=6, T=6, learning_rate=0.1, radius=0.1)
except ValueError as e:
    print('REFUSED7', e)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "REFUSED" in out and "jax_enable_x64" in out
    assert "OK32 float32" in out
    assert "REFUSED7" in out
