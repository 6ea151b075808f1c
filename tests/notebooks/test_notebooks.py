"""The notebooks run top to bottom in this environment, and are committed clean.

Each notebook is executed by ``nbclient`` in a fresh IPython kernel of *this*
interpreter (``sys.executable``, so the kernel imports the flatjax under test, never
whatever a ``python3`` kernelspec on the machine points to). Any error in a cell,
including a failed ``assert`` on the notebook's key quantity, fails the test; so does
a cell running longer than ``CELL_TIMEOUT`` seconds, and an error output left by
code that runs after a cell (such as drawing an inline figure). The committed files
must carry no outputs, so that diffs show code and prose only.
"""

import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from traitlets import default

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = [
    "01_flat_erm.ipynb",
    "02_sa_gd_drift.ipynb",
    "03_sam_sharp_and_trap.ipynb",
    "04_upper_bounds_and_stability.ipynb",
    "05_measures_on_the_hard_instances.ipynb",
    "06_sam_in_an_optax_pipeline.ipynb",
    "07_sam_in_a_training_loop.ipynb",
]
#: Per-cell limit. Each notebook takes well under a minute in total on two shared
#: CPU cores; a cell that takes five is stuck, not slow.
CELL_TIMEOUT = 300


class ThisPythonKernelSpecs(KernelSpecManager):
    """Resolves every kernel name to ipykernel running in ``sys.executable``."""

    def get_kernel_spec(self, kernel_name):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(
            argv=argv, display_name=f"Python ({sys.executable})", language="python"
        )


class ThisPythonKernelManager(AsyncKernelManager):
    """A kernel manager that only knows the kernel of this interpreter."""

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self):
        return ThisPythonKernelSpecs(parent=self)


def execute(nb):
    """Run ``nb`` in place in a kernel of this interpreter, from ``notebooks/``."""
    # The client owns (starts and shuts down) a kernel of ``kernel_manager_class``.
    client = NotebookClient(
        nb,
        kernel_name="python3",
        kernel_manager_class=ThisPythonKernelManager,
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()
    # An exception raised after a cell's code finished (e.g. when the inline backend
    # renders a figure with bad mathtext) leaves an error output, not a failed cell.
    for index, cell in enumerate(code_cells(nb)):
        for output in cell.outputs:
            if output.output_type == "error":
                raise AssertionError(
                    f"code cell {index} left an error: {output.ename}: {output.evalue}"
                )
    return nb


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_notebook_directory_holds_exactly_these_notebooks():
    found = sorted(path.name for path in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == NOTEBOOKS
    readme = (NOTEBOOK_DIR / "README.md").read_text()
    for name in NOTEBOOKS:
        assert name in readme, f"notebooks/README.md does not describe {name}"


def test_the_kernel_is_this_interpreter_and_imports_the_flatjax_under_test():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import sys\nimport flatjax\nprint(sys.executable)\nprint(flatjax.__file__)"
        )
    ]
    execute(nb)
    executable, module = nb.cells[0].outputs[0]["text"].split()
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert Path(module).resolve().is_relative_to(REPO / "flatjax")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for index, cell in enumerate(code_cells(nb)):
        assert cell.outputs == [], f"{name}: code cell {index} has outputs"
        assert cell.execution_count is None, f"{name}: code cell {index} was run"
    # The first code cell turns on float64 before any array exists.
    assert 'jax.config.update("jax_enable_x64", True)' in code_cells(nb)[0].source


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_without_error(name):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    execute(nb)
    # Every assert of the notebook ran: a notebook whose asserts were all skipped
    # would pass while checking nothing.
    sources = "\n".join(cell.source for cell in code_cells(nb))
    assert "assert " in sources
    assert all(cell.execution_count is not None for cell in code_cells(nb))
