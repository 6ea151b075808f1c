"""Every public name exists, is listed in a sorted ``__all__`` and has a docstring."""

import importlib
import inspect
import pkgutil

import pytest

import flatjax

SUBPACKAGES = sorted(
    f"flatjax.{info.name}"
    for info in pkgutil.iter_modules(flatjax.__path__)
    if info.ispkg
)


@pytest.mark.parametrize("module_name", ["flatjax", *SUBPACKAGES])
def test_all_is_sorted_and_documented(module_name):
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no docstring"
    names = module.__all__
    assert list(names) == sorted(names), f"{module_name}.__all__ is not sorted"
    for name in names:
        obj = getattr(module, name)
        assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"


def test_subpackages_are_found():
    assert "flatjax.problems" in SUBPACKAGES and "flatjax.optim" in SUBPACKAGES
