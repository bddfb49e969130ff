"""Every code block of the README and of the user guide (docs/*.md) is checked by running it.

A file's blocks run top to bottom in one temporary directory, so a block may use what an earlier
one wrote, the way a reader would go through the page.  The fence's label says how:

* ``python`` -- executed; the file's blocks share one namespace (VPF_SMALL=1 picks small settings);
* ``bash`` -- run by ``bash -e``, with this installation's ``vpf`` first on PATH, ``.venv``
  pointing at it and ``protocols/``, ``networks/``, ``benchmarks/``, ``notebooks/`` linked from the
  repository, as in a checkout;
* ``bash gpu`` -- the same, in a directory of its own, where an NVIDIA GPU and brian2cuda are
  present; skipped (and reported as skipped) elsewhere;
* ``bash setup`` -- the README's set-up commands: each must be a target of the Makefile (CI runs
  ``make test`` itself, through ``.ci/run``);
* ``toml`` -- parsed, and loaded as a network or a protocol when it is one;
* ``text`` -- output or file contents shown to the reader; nothing to run.

Any other label (or none) fails, so that a new block cannot silently escape the test.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC_FILES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
LABELS = {"python", "bash", "bash gpu", "bash setup", "toml", "text"}
LINKED = ("protocols", "networks", "benchmarks", "notebooks")


def _blocks(path):
    return [(label.strip(), code) for label, code in FENCE.findall(path.read_text())]


def _has_gpu():
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        import brian2cuda  # noqa: F401
    except ImportError:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def _checkout_like(folder):
    """Make ``folder`` look like the repository root to the commands of a page."""
    for name in LINKED:
        (folder / name).symlink_to(REPO / name, target_is_directory=True)
    (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)


def _run_bash(code, folder, where):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise AssertionError(f"{where} failed (exit {out.returncode}):\n{code}\n--- stdout\n{out.stdout[-3000:]}"
                             f"\n--- stderr\n{out.stderr[-3000:]}")


def _check_toml(code, where):
    from vpf_spiking.networks import parse_network
    from vpf_spiking.protocols import ProtocolConfig, parse_train, resolve_kind

    try:
        doc = tomllib.loads(code)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"{where} is not valid TOML: {exc}") from None
    if "layers" in doc:
        parse_network(doc, source=where)
    elif "kind" in doc:
        config = ProtocolConfig(doc, source=where)
        resolve_kind(config)
        if doc["kind"] == "train":
            parse_train(config)


def _check_setup(code, where):
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    for line in code.splitlines():
        command = line.split("#")[0].strip()
        if command:
            assert command.startswith("make "), f"{where}: set-up line {line!r} is not a make command"
            assert command.split()[1] in targets, f"{where}: 'make {command.split()[1]}' is not in the Makefile"
    assert "make test" in (REPO / ".ci" / "run").read_text(), ".ci/run must call the README's test command"


def test_every_block_has_a_known_label():
    for path in DOC_FILES:
        for i, (label, _) in enumerate(_blocks(path)):
            assert label in LABELS, (f"{path.name}, code block {i} is fenced as {label!r}; use one of "
                                     f"{sorted(LABELS)} (see tests/test_docs.py)")


@pytest.mark.parametrize("path", [p for p in DOC_FILES if _blocks(p)], ids=lambda p: p.name)
def test_doc_code_blocks_run(path, tmp_path, monkeypatch, shared_data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VPF_SMALL", "1")
    monkeypatch.setenv("VPF_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    _checkout_like(tmp_path)
    namespace = {"__name__": "__doc__"}
    for i, (label, code) in enumerate(_blocks(path)):
        where = f"{path.name}, code block {i} ({label})"
        if label == "python":
            try:
                exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
            except Exception as exc:  # name the block, so a broken example is easy to find
                raise AssertionError(f"{where} failed: {exc!r}\n{code}") from exc
        elif label == "bash":
            _run_bash(code, tmp_path, where)
        elif label == "toml":
            _check_toml(code, where)
        elif label == "bash setup":
            _check_setup(code, where)
    if path.name == "README.md":
        # a reader who follows the README in a checkout must find everything under runs/
        # (ignored by git), not stray files in the repository root
        stray = sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink() and p.name != "runs")
        assert not stray, f"README commands wrote outside runs/: {stray}"


GPU_BLOCKS = [(p, i) for p in DOC_FILES for i, (label, _) in enumerate(_blocks(p)) if label == "bash gpu"]


@pytest.mark.parametrize("path,index", GPU_BLOCKS, ids=[f"{p.name}-{i}" for p, i in GPU_BLOCKS])
def test_gpu_code_blocks_run(path, index, tmp_path, shared_data_dir, monkeypatch):
    if not _has_gpu():
        pytest.skip("needs an NVIDIA GPU and brian2cuda (pip install -e '.[cuda]')")
    monkeypatch.setenv("VPF_DATA_DIR", str(shared_data_dir))
    _checkout_like(tmp_path)
    _run_bash(_blocks(path)[index][1], tmp_path, f"{path.name}, code block {index} (bash gpu)")
