"""Loading and running protocol files: ``vpf run PROTOCOL.toml`` and :func:`run_protocol`.

The runner looks the ``kind`` up in :data:`~vpf_spiking.protocols.kinds.KINDS`, checks the
run's inputs (:data:`CHECKS`: for the training kinds the network, the data and the trainer
settings) before anything is written, then opens the output folder (default ``runs/<name>/``)
as a :class:`RunFolder` (refused when it holds an earlier
run's results unless ``resume`` or ``overwrite``; locked while the run lasts), writes the
effective protocol (``protocol.toml``, overrides applied) and the command that started it
(``command.txt``) there, and calls the kind's function with ``(config, out_dir)`` (and
``resume=`` when the function accepts it).  A run that fails or is interrupted before it wrote
anything leaves the folder as it found it.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import shutil
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..io import FolderLock, atomic_write_text, make_folder, read_text, write_toml
from ..resources import resolve_shipped
from .config import ProtocolConfig, apply_overrides
from .kinds import KINDS


def load_protocol(path) -> ProtocolConfig:
    """Read a protocol file (or a shipped one by name: ``demo``); check its TOML and ``kind``."""
    path = resolve_shipped(path, "protocols", "protocol")
    try:
        doc = tomllib.loads(read_text(path, "protocol"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({' '.join(str(exc).split())})") from None
    config = ProtocolConfig(doc, source=path)
    resolve_kind(config)
    return config


def known_kinds() -> list[str]:
    """Every kind that can be run, sorted."""
    return sorted(KINDS)


def resolve_kind(config: ProtocolConfig) -> Callable:
    """The function that runs ``config['kind']``; ConfigError listing the known kinds otherwise."""
    src = config.source
    if "kind" not in config:
        raise ConfigError(f"{src}: missing top-level key 'kind' (known kinds: {', '.join(known_kinds())})")
    kind = config["kind"]
    if not isinstance(kind, str):
        raise ConfigError(f"{src}: 'kind' must be a string, got {kind!r}")
    if kind not in KINDS:
        raise ConfigError(f"{src}: unknown kind {kind!r} (known kinds: {', '.join(known_kinds())})")
    return KINDS[kind]


def output_dir(config: ProtocolConfig, out_dir=None) -> Path:
    """``out_dir`` if given, else ``runs/<name>`` (the name must be a plain file name)."""
    if out_dir is not None:
        return Path(out_dir)
    name = config.name
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(f"{config.source}: name must be a plain file name (letters, digits, . _ -), got {name!r}")
    return Path("runs") / name


def run_protocol(path_or_dict, out_dir=None, overrides=None, resume=False, command=None, overwrite=False):
    """Run a protocol file (or dict) and return what its kind's function returns.

    Parameters
    ----------
    path_or_dict : path or dict
        A ``protocols/*.toml`` file, or an already parsed protocol (a :class:`ProtocolConfig`
        keeps the overrides already applied to it).
    out_dir : path, optional
        Output folder; default ``runs/<name>/`` under the current directory.
    overrides : list of str, optional
        ``KEY=VALUE`` items as for ``vpf run --set`` (see :func:`apply_overrides`).
    resume : bool
        Continue from the checkpoint in ``out_dir`` (kinds that accept ``resume``).
    command : str, optional
        The command line recorded in ``command.txt`` (default: this process's argv).
    overwrite : bool
        Replace the results of an earlier run in ``out_dir`` (without it, and without
        ``resume``, such a folder is refused).
    """
    if isinstance(path_or_dict, (str, Path)):
        config = load_protocol(path_or_dict)
    elif isinstance(path_or_dict, dict):
        config = path_or_dict if isinstance(path_or_dict, ProtocolConfig) else ProtocolConfig(path_or_dict)
    else:
        raise ConfigError(f"a protocol must be a file path or a dict, got {type(path_or_dict).__name__}")
    if overrides:
        config = apply_overrides(config, overrides)
    func = resolve_kind(config)
    out = output_dir(config, out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    accepts_resume = "resume" in inspect.signature(func).parameters
    if resume and not accepts_resume:
        raise ConfigError(f"kind {config['kind']!r} cannot resume (run it again without --resume)")
    if resume and overwrite:
        raise ConfigError("--resume continues the run in the output folder and --overwrite replaces it; choose one")
    check_inputs(config)
    if command is None:
        command = shlex.join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv and sys.argv[0] else "python"

    with RunFolder(out, resume=resume, overwrite=overwrite, command=command) as folder:
        folder.write_protocol(config, command)
        kwargs = {"resume": resume} if accepts_resume else {}
        return func(config, out, **kwargs)


# ---------------------------------------------------------------------------- the run folder
#: The files whose presence makes a folder the run folder of an earlier run.
RUN_FILES = ("model.npz", "checkpoint.npz", "metrics.csv", "protocol.toml", "command.txt")
#: The lock file held while a run writes into its folder.
LOCK_FILE = ".vpf.lock"
_RECORDS = ("protocol.toml", "command.txt")
_BACKUP = ".{}.vpf-prev"  # the record of the earlier run while this one has not written anything else


class RunFolder:
    """The output folder of one run, as a context manager (see :func:`run_protocol`).

    On entry: the folder is created if needed and locked (:class:`~vpf_spiking.io.FolderLock`;
    a second writer is refused, a stale lock of a dead process taken over); a folder holding an
    earlier run's results (:data:`RUN_FILES`) is refused unless ``resume`` (continue it) or
    ``overwrite`` (those files are deleted first).  On exit the lock is released; when the run
    failed or was interrupted before it wrote anything but ``protocol.toml`` and
    ``command.txt``, those two get their old contents back (and a folder this run created is
    removed), so a failed run leaves no trace.
    """

    def __init__(self, path, resume=False, overwrite=False, command=""):
        self.path = Path(path)
        self.resume, self.overwrite, self.command = bool(resume), bool(overwrite), command
        self.created = False
        self.lock = None
        self._old_commands = None
        self._before = None

    def __enter__(self):
        self.created = not self.path.exists()
        make_folder(self.path)
        try:
            self.lock = FolderLock(self.path / LOCK_FILE, note=self.command).acquire()
            found = [name for name in RUN_FILES if (self.path / name).exists()]
            if found and not (self.resume or self.overwrite):
                raise ConfigError(f"{self.path}: holds the results of an earlier run ({', '.join(found)}); "
                                  f"pass --resume to continue it, --overwrite to replace it, or choose another --out")
            if found and self.overwrite:
                for name in found:
                    (self.path / name).unlink()
            self._old_commands = self._read("command.txt") if self.resume else None
            for name in _RECORDS:  # keep the earlier run's records, to put back if this run writes nothing
                self._backup(name)
            self._before = self._snapshot()
        except BaseException:
            self._close()
            raise
        return self

    def write_protocol(self, config, command):
        """``protocol.toml`` (the effective protocol) and ``command.txt`` (appended on resume)."""
        header = f"# effective protocol, written by vpf at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        header += f"# source: {config.source}\n"
        if config.overrides:
            header += f"# overrides: {' '.join(config.overrides)}\n"
        write_toml(self.path / "protocol.toml", dict(config), header=header)
        atomic_write_text(self.path / "command.txt", (self._old_commands or "") + command + "\n")

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None and self._before is not None and self._snapshot() == self._before:
                self._restore()
        finally:
            try:
                for name in _RECORDS:
                    backup = self.path / _BACKUP.format(name)
                    if backup.exists():
                        backup.unlink()
            finally:
                self._close()
        return False

    # -- helpers
    def _read(self, name):
        f = self.path / name
        return f.read_text(encoding="utf-8") if f.is_file() else None

    def _backup(self, name):
        """Keep ``name`` as it is (same file, same time stamps) under its backup name."""
        f, backup = self.path / name, self.path / _BACKUP.format(name)
        if backup.exists():
            backup.unlink()  # left by a run that was killed
        if not f.exists():
            return
        try:
            os.link(f, backup)
        except OSError:
            shutil.copy2(f, backup)

    def _snapshot(self) -> dict:
        """(size, mtime) of every file but the records, their backups, the lock and temporary files."""
        skip = set(_RECORDS) | {_BACKUP.format(n) for n in _RECORDS} | {LOCK_FILE}
        out = {}
        for f in self.path.rglob("*"):
            rel = f.relative_to(self.path).as_posix()
            if rel in skip or f.name.endswith(".tmp"):
                continue
            try:
                st = f.stat()
            except OSError:
                continue
            out[rel] = (st.st_size, st.st_mtime_ns, f.is_dir())
        return out

    def _restore(self):
        for name in _RECORDS:
            f, backup = self.path / name, self.path / _BACKUP.format(name)
            if backup.exists():
                os.replace(backup, f)
            elif f.exists():
                f.unlink()

    def _close(self):
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.created:
            try:
                self.path.rmdir()  # only when the run left it empty
            except OSError:
                pass


# ---------------------------------------------------------------------------- input checks
def _check_training(config, parse):
    from ..trainers import check_training_data
    from .inputs import load_model_and_data

    s = parse(config)
    model, x, _ = load_model_and_data(s)
    check_training_data(model, x)
    return s, model


def _check_train(config):
    from ..trainers import make_trainer
    from .train import parse_train

    s, model = _check_training(config, parse_train)
    make_trainer(s["method"], **s["trainer"]).check_model(model)


def _check_spiking_train(config):
    from .spiking_train import parse_spiking_train

    _check_training(config, parse_spiking_train)


def _check_single_model(config, settings):
    from ..model import BoltzmannMachine
    from .inputs import data_settings, model_path

    BoltzmannMachine.load(model_path(config))
    data_settings(config)
    settings(config)


def _check_reconstruction(config):
    from .reconstruction import settings

    _check_single_model(config, settings)


def _check_parzen(config):
    from .parzen import settings

    _check_single_model(config, settings)


def _check_ais(config):
    from .ais import settings

    _check_single_model(config, settings)


def _check_stdp(config):
    from .stdp import protocol_from_config

    protocol_from_config(config)


#: kind -> function(config) that validates a protocol and loads its inputs without writing
#: anything (ConfigError / DataError / ModelError otherwise).  :func:`run_protocol` calls it
#: before it touches the output folder; a kind without an entry is checked by its own run.
CHECKS: dict[str, Callable] = {
    "train": _check_train,
    "spiking-train": _check_spiking_train,
    "reconstruction": _check_reconstruction,
    "parzen": _check_parzen,
    "ais": _check_ais,
    "stdp": _check_stdp,
}


def check_inputs(config) -> None:
    """Validate ``config`` and what it names (:data:`CHECKS`); nothing is written."""
    check = CHECKS.get(config.get("kind"))
    if check is not None:
        check(config)
