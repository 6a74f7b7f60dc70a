"""The documented paths cannot rot: the quickstart notebook runs, the README's Python
quickstart runs as written, and the type stub matches the native module."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOK = ROOT / "migrations-examples" / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    html = [
        o["data"]["text/html"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "data" in o and "text/html" in o["data"]
    ]
    joined = "\n".join(html)
    assert "memlane plan" in joined and "memlane apply" in joined and "memlane compat" in joined
    assert "PASS" in joined or "REVIEW" in joined


def test_readme_python_quickstart_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README has no ```python block"
    script = tmp_path / "quickstart.py"
    script.write_text(blocks[0])
    p = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_stub_matches_native_module() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "memlane._memlane", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_typed_user_code_passes_mypy_strict() -> None:
    """The stubs carry every documented attribute (exception fields, reports, the
    search and embedder surface): a user's typed code checks under `mypy --strict`."""
    usage = Path(__file__).with_name("typing_usage.py")
    p = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", "/dev/null", str(usage)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
