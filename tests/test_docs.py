"""The docs site covers the package: an API page per subpackage, every notebook."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MKDOCS = (REPO / "mkdocs.yml").read_text()


def subpackages() -> list[str]:
    return sorted(
        p.name
        for p in (REPO / "flatjax").iterdir()
        if (p / "__init__.py").exists() and p.name != "cli"
    )


def test_every_subpackage_has_an_api_page_in_the_nav():
    assert len(subpackages()) >= 7
    for name in subpackages():
        page = REPO / "docs" / "api" / f"{name}.md"
        assert page.exists(), f"docs/api/{name}.md is missing"
        assert f"::: flatjax.{name}\n" in page.read_text()
        assert f"api/{name}.md" in MKDOCS, f"api/{name}.md is not in mkdocs.yml's nav"


def test_every_notebook_is_in_the_nav():
    # mkdocs only logs (INFO) a page left out of the nav, so --strict misses it.
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        assert f"notebooks/{notebook.name}" in MKDOCS, notebook.name
    assert (REPO / "docs" / "notebooks").resolve() == (REPO / "notebooks").resolve()
