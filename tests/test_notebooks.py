"""Every notebook in notebooks/ executes top to bottom (small settings via VPF_SMALL=1).

nbclient and ipykernel come with the test extras; a missing one fails the suite rather than
skipping the notebooks silently.
"""

from pathlib import Path

import nbclient
import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch, shared_data_dir):
    monkeypatch.setenv("VPF_SMALL", "1")
    monkeypatch.setenv("VPF_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    # run where Jupyter would (the notebook's folder), and check that it leaves no files there
    before = _files(path.parent)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    new = sorted(_files(path.parent) - before)
    assert not new, f"{path.name} wrote into notebooks/: {new} (write under a temporary or runs/ folder)"


def _files(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts}


def test_every_notebook_is_listed_in_the_readme_and_the_guide():
    readme = (REPO / "README.md").read_text()
    guide = (REPO / "docs" / "guide.md").read_text()
    assert len(NOTEBOOKS) >= 4
    for path in NOTEBOOKS:
        assert path.stem in readme and path.name in guide, f"{path.name} is not listed in README.md and docs/guide.md"
