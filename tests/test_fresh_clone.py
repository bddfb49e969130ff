"""A new user's first hour leaves no stray files: in a fresh clone of the committed repository,
the README's next-step commands and every notebook run, and ``git status --porcelain`` then lists
nothing (everything they write is under ``runs/`` or a temporary folder, both ignored).

Slow (the README's commands and the four notebooks, about five minutes): ``--run-slow``.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


@pytest.mark.slow
def test_readme_commands_and_notebooks_leave_a_clean_git_status(tmp_path, shared_data_dir):
    import nbclient
    import nbformat

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "main"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (tmp_path / "shared").symlink_to(shared_data_dir.parent, target_is_directory=True)
    (clone / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)  # what `make` would create
    env = {**os.environ, "VPF_SMALL": "1", "MPLBACKEND": "Agg", "VPF_DATA_DIR": str(shared_data_dir)}
    blocks = [code for label, code in FENCE.findall((clone / "README.md").read_text()) if label.strip() == "bash"]
    assert blocks, "the README has no next-step commands"
    for code in blocks:
        out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=clone, env=env, capture_output=True,
                             text=True, timeout=1200)
        assert out.returncode == 0, f"{code}\n{out.stderr[-3000:]}"
    old = dict(os.environ)
    os.environ.update(env)
    try:
        for path in sorted((clone / "notebooks").glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", f"files outside runs/ after the README and the notebooks:\n{status}"
