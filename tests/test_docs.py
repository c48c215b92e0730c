"""Documentation: the site builds strictly, the notebook runs, docstring examples run, nothing is undocumented.

The site build and the docstring inventory do not depend on the backend and run in the
TensorFlow process only; the docstring examples and the notebook run on every backend.
Needs the docs extra (mkdocs, mkdocstrings, mkdocs-click, mkdocs-jupyter, nbclient,
nbformat, ipykernel).
"""

import doctest
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import keras_colorize
from tests.test_case import REPO_ROOT

BACKEND = keras.backend.backend()
ONCE = pytest.mark.skipif(BACKEND != "tensorflow", reason="backend independent, checked in the tensorflow run")
NOTEBOOK = Path(REPO_ROOT) / "docs" / "notebooks" / "quickstart.ipynb"

def _module_names():
    names = ["keras_colorize"]
    names += [info.name for info in pkgutil.walk_packages(keras_colorize.__path__, "keras_colorize.")]
    return names


def _modules_with_examples():
    found = []
    for name in _module_names():
        spec = importlib.util.find_spec(name)
        if spec and spec.origin and ">>>" in Path(spec.origin).read_text(encoding="utf-8"):
            found.append(name)
    return found


# --------------------------------------------------------------------------- site


@ONCE
def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="needs the docs extra: pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=REPO_ROOT)
    env.pop("KERAS_BACKEND", None)  # the build must not depend on the backend
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    site = tmp_path / "site"
    # Generated pages hold what they are generated from.
    cli_page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for command in ("fit", "evaluate", "colorize", "export", "models", "recipes", "samples"):
        assert f"keras-colorize {command}" in cli_page, command
    api_page = (site / "reference" / "api" / "colorizer" / "index.html").read_text(encoding="utf-8")
    assert "keras_colorize.colorizer.Colorizer" in api_page and "predict_rgb" in api_page
    notebook_page = (site / "notebooks" / "quickstart" / "index.html").read_text(encoding="utf-8")
    assert "export_colorizer" in notebook_page


@ONCE
def test_readme_links_point_to_existing_pages():
    readme = (Path(REPO_ROOT) / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not t.startswith(("http://", "https://", "mailto:"))]
    assert local, "README.md links to no documentation page"
    missing = [t for t in local if not (Path(REPO_ROOT) / t).exists()]
    assert not missing, missing


# --------------------------------------------------------------------------- docstrings


def _public_objects():
    """(qualified name, object) of every public class and function, and the public
    methods and properties a class adds to its bases."""
    for name in _module_names():
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if attribute.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            yield f"{name}.{attribute}", value
            if not inspect.isclass(value):
                continue
            for member, raw in vars(value).items():
                if member.startswith("_") or any(hasattr(base, member) for base in value.__mro__[1:]):
                    continue
                function = raw.fget if isinstance(raw, property) else getattr(raw, "__func__", raw)
                if inspect.isfunction(function):
                    yield f"{name}.{attribute}.{member}", function


@ONCE
def test_every_public_class_and_function_has_a_docstring():
    missing = [
        qualified
        for qualified, value in _public_objects()
        if not (value.__doc__ or "").strip()
    ]
    assert not missing, "no docstring: " + ", ".join(missing)


@pytest.mark.parametrize("module_name", _modules_with_examples())
def test_docstring_examples(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in doctest.DocTestFinder().find(module, module_name):
        if test.examples:
            runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
    if results.attempted == 0:
        pytest.skip("every example is marked +SKIP (needs files or long training)")


# --------------------------------------------------------------------------- notebook


def test_notebook_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat", reason="needs the docs extra: pip install -e '.[docs]'")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="needs the docs extra: pip install -e '.[docs]'")
    nbclient = pytest.importorskip("nbclient", reason="needs the docs extra: pip install -e '.[docs]'")
    pytest.importorskip("ipykernel", reason="needs the docs extra: pip install -e '.[docs]'")
    # The kernel process inherits this environment: same backend, the checkout on the path.
    monkeypatch.setenv("KERAS_BACKEND", BACKEND)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows the figures
    if BACKEND == "jax":
        monkeypatch.setenv("JAX_THREEFRY_PARTITIONABLE", "0")  # as tests/conftest.py: fast initializers
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # a failing cell raises CellExecutionError with its traceback
    outputs = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert f"on {BACKEND}" in outputs
    assert (tmp_path / "quickstart.keras").is_file()
    assert (tmp_path / "exported" / "quickstart" / "saved_model.pb").is_file()
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the loss curve and the colorized photos
    shutil.rmtree(tmp_path / "exported", ignore_errors=True)
