"""SweepConfig's strict types from Python (the TOML side is in tests/cli)."""

import pytest

from flatjax.sweep import SweepConfig

BASE = {
    "problem": "LeastSquares",
    "optimizer": "sam",
    "grid": {"d": [4], "n": [6], "learning_rate": [0.25], "radius": [0.05]},
    "seeds": 4,
    "steps": 8,
    "block_size": 4,
}


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"conditioned": "no"}, r"SweepConfig\(conditioned=...\)` must be a bool"),
        ({"population": 1}, r"SweepConfig\(population=...\)` must be a bool"),
        ({"block_size": True}, r"SweepConfig\(block_size=...\)` must be an int >= 1"),
        ({"steps": 2.5}, r"SweepConfig\(steps=...\)` must be an int >= 1"),
        ({"seed": "abc"}, r"SweepConfig\(seed=...\)` must be an int >= 0"),
        ({"seeds": 4.0}, r"SweepConfig\(seeds=...\)` must be an int >= 1"),
        ({"curve_every": None}, r"SweepConfig\(curve_every=...\)` must be an int"),
        ({"problem": 3}, r"SweepConfig\(problem=...\)` must be a string"),
        ({"problem": "Flaterm"}, r"did you mean 'FlatERM'"),
        ({"maximizer": 1}, r"SweepConfig\(maximizer=...\)` must be a string or None"),
        ({"record": "final"}, r"SweepConfig\(record=...\)` must be a list of strs"),
        ({"suffix_starts": 3}, r"SweepConfig\(suffix_starts=...\)` must be a list"),
        ({"suffix_starts": (True,)}, r"suffix_starts=...\)` must be ints in \[1"),
        ({"grid": [("d", 4)]}, r"SweepConfig\(grid=...\)` must be a mapping"),
        (
            {"grid": {**BASE["grid"], 3: [1]}},
            r"SweepConfig\(grid=...\)` keys must be strings",
        ),
        (
            {"grid": {**BASE["grid"], "learnig_rate": [0.1]}},
            r"'learnig_rate' \(did you mean 'learning_rate'\?\)",
        ),
    ],
)
def test_wrong_types_are_refused_naming_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        SweepConfig(**{**BASE, **overrides})


def test_the_base_configuration_is_valid():
    assert SweepConfig(**BASE).block_size == 4
