"""Every ``python`` code block in the README and the user guide runs, top to bottom per file.

Blocks fenced as ```python run; blocks fenced as ```bash or ```text are shown, not run.
Each file's blocks share one namespace and run in a temporary working directory, with
VPF_SMALL=1 so that examples choose their small settings.
"""

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC_FILES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(path):
    return BLOCK.findall(path.read_text())


@pytest.mark.parametrize("path", [p for p in DOC_FILES if _blocks(p)], ids=lambda p: p.name)
def test_doc_code_blocks_run(path, tmp_path, monkeypatch, shared_data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VPF_SMALL", "1")
    monkeypatch.setenv("VPF_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__doc__"}
    for i, code in enumerate(_blocks(path)):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block, so a broken example is easy to find
            raise AssertionError(f"{path.name}, code block {i} failed: {exc!r}\n{code}") from exc
