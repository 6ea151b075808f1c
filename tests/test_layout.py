"""The package layout, read from the source with ``ast``.

Two rules (STYLE.md, "Layout"):

* no private name crosses a package: a module of ``flatjax.<pkg>`` may import a
  private module or name only from its own package (``from ._x import _y``) or from
  a top-level shared leaf module (``flatjax/_checks.py``, ``flatjax/_environment.py``);
  anything else comes from the other subpackage's public ``__init__``;
* imports follow one direction, ``problems -> optim -> runner -> sweep -> reproduce
  -> cli``, with ``bounds`` (pure functions of numbers) below everything and
  ``measures`` (uses optim's maximizers) between optim and runner: a package imports
  only packages ranked below it; the shared leaf modules import no subpackage.

The bug each catches: a helper reached through another package's private module
(``from flatjax.optim._maximizers import ...``), which breaks silently when that
package reorganizes; and an import cycle in the making (optim importing runner).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "flatjax"

#: The direction of imports, lowest first: a package may import only those before it.
ORDER = (
    "bounds",
    "problems",
    "optim",
    "measures",
    "runner",
    "sweep",
    "reproduce",
    "cli",
)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_path(path: pathlib.Path) -> list[str]:
    parts = ["flatjax", *path.relative_to(ROOT).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: pathlib.Path, tree: ast.AST):
    """Yield ``(line, target module parts, imported names)`` for flatjax imports."""
    module = _module_path(path)
    package = module if path.name == "__init__.py" else module[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if target[0] == "flatjax":
                yield node.lineno, target, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "flatjax":
                    yield node.lineno, alias.name.split("."), []


def layout_violations(path: pathlib.Path, source: str) -> list[str]:
    """Every cross-package private import and every import against the direction."""
    tree = ast.parse(source, filename=str(path))
    module = _module_path(path)
    own = module[1] if len(module) > 1 else None
    is_leaf = own is not None and _private(own)  # flatjax/_checks.py, ...
    if is_leaf:
        own = None
    where = path.relative_to(ROOT.parent)
    problems = []
    bound = {}  # local name -> flatjax subpackage it names (other packages only)
    for line, target, names in _imports(path, tree):
        # A submodule named in the import (`from flatjax import optim`) counts as
        # the target for the names imported.
        for name in names or [None]:
            full = target + ([name] if name and len(target) == 1 else [])
            other = full[1] if len(full) > 1 else None
            if other is None or other == own:
                continue
            if _private(other):  # a shared top-level leaf module
                continue
            private = [part for part in full[2:] if _private(part)]
            if name is not None and len(target) > 1 and _private(name):
                private.append(name)
            if private:
                problems.append(
                    f"{where}:{line}: private {'.'.join(full)} ({', '.join(private)})"
                    " imported across packages; import it from the subpackage's "
                    "public __init__"
                )
            if is_leaf:
                problems.append(
                    f"{where}:{line}: the shared leaf module imports flatjax.{other}"
                )
            elif own is not None and ORDER.index(other) >= ORDER.index(own):
                problems.append(
                    f"{where}:{line}: flatjax.{own} imports flatjax.{other}, against "
                    f"the direction {' -> '.join(ORDER)}"
                )
            if name is not None and len(target) == 1:
                bound[name] = other
    # `from flatjax import optim` then `optim._maximizers`: a private attribute.
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and _private(node.attr)
        ):
            problems.append(
                f"{where}:{node.lineno}: private {node.value.id}.{node.attr} used "
                "across packages"
            )
    return problems


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_subpackage_is_ranked():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ORDER)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_import_across_packages_and_one_direction(path):
    assert layout_violations(path, path.read_text()) == []


@pytest.mark.parametrize(
    ("relative", "line", "fragment"),
    [
        # The offender this test was written for (measures reached into optim).
        (
            "measures/_sharpness.py",
            "from flatjax.optim._maximizers import AscentMaximizer",
            "private flatjax.optim._maximizers",
        ),
        ("measures/_sharpness.py", "from ..optim import _x", "(_x)"),
        ("measures/_sharpness.py", "from .. import optim\noptim._y", "optim._y"),
        ("reproduce/_theorem3.py", "import flatjax.runner._fused", "_fused"),
        ("optim/_transforms.py", "from ..runner import run", "against the direction"),
        ("problems/_base.py", "from flatjax.sweep import run_sweep", "direction"),
        ("_checks.py", "from flatjax.problems import SAMTrap", "leaf module imports"),
    ],
)
def test_planted_violation_is_caught(relative, line, fragment):
    path = ROOT / relative
    found = layout_violations(path, path.read_text() + "\n" + line + "\n")
    assert any(fragment in problem for problem in found), found


def test_imports_within_a_package_and_from_leaf_modules_are_allowed():
    path = ROOT / "measures" / "_sharpness.py"
    lines = "from ._base import _private_helper\nfrom .._checks import check_int\n"
    assert layout_violations(path, lines) == []
