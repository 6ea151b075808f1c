"""The public surface of flatjax.measures: sorted exports, each documented."""

import inspect

import flatjax.measures as measures


def test_all_is_sorted_and_complete():
    assert measures.__all__ == sorted(measures.__all__)
    public = {
        name
        for name, value in vars(measures).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(measures.__all__)


def test_every_public_name_has_a_docstring_and_functions_an_example():
    for name in measures.__all__:
        value = getattr(measures, name)
        assert inspect.getdoc(value), name
        if inspect.isfunction(value):
            doc = inspect.getdoc(value)
            assert "Examples:" in doc and ">>>" in doc, name
            assert "References:" in doc, name
