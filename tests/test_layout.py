"""The package's shape: every module imports, and the imports only go down the layers
(`tools/imports.py` reads them with `ast`, imports made inside functions included)."""

import importlib
import json
import pkgutil
import subprocess
import sys

import tunesmith
from tests.conftest import REPO

DEFERRED = {("tunesmith.cli.serve", "tunesmith.serve.app"),
            ("tunesmith.cli.serve", "tunesmith.serve.deps"),
            ("tunesmith.cli.serve", "tunesmith.serve.engine"),
            ("tunesmith.cli.serve", "tunesmith.serve.vllm")}
"""Own modules imported inside a function on purpose: the service needs the [serve] extra
(FastAPI), which the rest of the command line must not."""


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(tunesmith.__path__, "tunesmith.")
             if m.name != "tunesmith.__main__"]  # that one runs the command line
    assert len(names) > 100
    for name in names:
        importlib.import_module(name)


def test_no_import_circles_no_upward_imports_no_hidden_imports():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "imports.py"), "--json"],
                         capture_output=True, text=True, check=True).stdout
    shape = json.loads(out)
    assert shape["circles"] == []
    assert shape["upward_imports"] == []
    deferred = {(d["module"], d["imports"]) for d in shape["imports_inside_functions_list"]}
    assert deferred <= DEFERRED, sorted(deferred - DEFERRED)
