"""Files: tagged ``.npz`` archives, atomic writes, tables, and one-line messages for OS errors.

Every file the package writes goes through :func:`atomic_open` (or a helper built on it): the
bytes go to a temporary file in the same folder, are flushed to disk, and the temporary file is
moved onto the target with :func:`os.replace`.  A reader (or a run killed half way) therefore
sees either the old file or the new one, never half a file.

An :class:`OSError` raised while writing names the *target* path (not the temporary one), so
:func:`describe_os_error` can turn it into one line such as ``runs/x/model.npz: no space left on
device (the disk is full)``; the ``vpf`` command prints that line and exits with status 2.

Writers: :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_savez`,
:func:`write_csv`, :func:`write_json`, :func:`write_toml` (with :func:`dump_toml`),
:func:`write_table` (CSV and a Markdown copy) and :func:`save_figure` (PNG).  Readers:
:func:`read_tagged_npz`, :func:`read_text`.  Checks before long work starts:
:func:`check_output_file`, :func:`check_writable`.  One writer per folder: :class:`FolderLock`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .errors import ConfigError

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_savez", "write_csv", "write_json",
           "write_toml", "dump_toml", "write_table", "save_figure", "read_tagged_npz", "make_folder",
           "check_output_file", "describe_os_error", "named_os_error", "interrupts_deferred",
           "FolderLock", "read_text", "check_writable"]


# ---------------------------------------------------------------------------- OS errors
_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EROFS: "choose another output folder",
    errno.EACCES: "check its permissions, or write to another folder",
    errno.EPERM: "check its permissions, or write to another folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    getattr(errno, "EDQUOT", -1): "free some space or write elsewhere",
}


def named_os_error(exc: OSError, path) -> OSError:
    """``exc`` naming ``path`` (a copy when ``exc`` names no file or a temporary file)."""
    name = exc.filename
    if name is not None and not str(Path(name).name).endswith(".tmp"):
        return exc
    new = OSError(exc.errno, exc.strerror or str(exc), str(path))
    new.__cause__ = None
    return new


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: the path it concerns, what happened, what to do."""
    what = exc.strerror or (str(exc.args[0]) if exc.args else type(exc).__name__)
    hint = _HINTS.get(exc.errno)
    text = what[0].lower() + what[1:] if what else "error"
    if hint:
        text = f"{text}; {hint}"
    where = exc.filename
    if where is None:
        # a chained error may name the file (e.g. a second failure while cleaning up)
        inner = exc.__context__ or exc.__cause__
        if isinstance(inner, OSError) and inner.filename is not None:
            where = inner.filename
    if exc.filename2 is not None and where is not None:
        where = f"{where} -> {exc.filename2}"
    return f"{where}: {text}" if where is not None else text


# ---------------------------------------------------------------------------- atomic writes
def make_folder(folder) -> Path:
    """``mkdir -p folder``; an OSError names the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OSError(errno.EEXIST, "exists and is not a folder", str(folder)) from None
    except OSError as exc:
        raise named_os_error(exc, folder) from None
    return folder


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", encoding: str | None = "utf-8"):
    """``with atomic_open(path, "w") as fh:`` write to a temporary file, then replace ``path``.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"``.  Nothing is left behind when the block
    raises (the temporary file is removed and ``path`` keeps its old contents); an OSError names
    ``path``.  The folder is created if needed.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    make_folder(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    xmode = "x" if mode == "w" else "xb"
    try:
        try:
            fh = open(tmp, xmode, encoding=encoding if mode == "w" else None)
        except OSError as exc:
            raise named_os_error(exc, path) from None
        with fh:
            yield fh
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                raise named_os_error(exc, path) from None
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise named_os_error(exc, path) from None
    except OSError as exc:
        # a full disk usually shows up in write() inside the block
        if exc.filename is None or str(exc.filename) == str(tmp):
            raise named_os_error(exc, path) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()


def atomic_write_bytes(path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_savez(path, arrays: dict) -> Path:
    """``np.savez`` atomically; ``.npz`` is appended to the name if missing.  Returns the path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def write_csv(df, path, **to_csv) -> Path:
    """A pandas DataFrame as CSV (``index=False`` unless given), atomically."""
    to_csv.setdefault("index", False)
    return atomic_write_text(path, df.to_csv(**to_csv))


def write_json(path, obj, indent=2) -> Path:
    """``obj`` as indented JSON (numpy scalars as numbers), atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return float(v)


def write_table(df, stem, floatfmt=".4g", markdown=True):
    """``df`` as ``stem.csv`` and (``markdown=True``) ``stem.md``, a GitHub table; each atomically.

    Returns ``(csv_path, md_path)`` (``md_path`` None without Markdown).
    """
    stem = Path(stem)
    csv = stem.with_name(stem.name + ".csv") if stem.suffix != ".csv" else stem
    base = csv.with_suffix("")
    write_csv(df, csv)
    md = None
    if markdown:
        md = base.with_name(base.name + ".md")
        atomic_write_text(md, df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return csv, md


def check_output_file(path, suffixes=(".png",), what="figure") -> Path:
    """Refuse (ConfigError) an output file name whose suffix is not one of ``suffixes``, or a folder."""
    path = Path(path)
    if path.suffix.lower() not in tuple(s.lower() for s in suffixes):
        raise ConfigError(f"{path}: a {what} is written as {'/'.join(s.lstrip('.').upper() for s in suffixes)}; "
                          f"give a file name ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a file name ending in {' or '.join(suffixes)}")
    return path


def check_writable(folder) -> Path:
    """Create ``folder`` if needed and make sure a file can be written there, before long work starts.

    An OSError (read-only or full file system, no permission, a file in the way) names the folder.
    """
    folder = make_folder(folder)
    probe = folder / f".vpf-probe.{os.getpid()}.{secrets.token_hex(3)}.tmp"
    try:
        with open(probe, "xb") as fh:
            fh.write(b"x")
    except OSError as exc:
        raise named_os_error(exc, folder) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return folder


def save_figure(fig, path, dpi=110) -> Path:
    """A matplotlib Figure as a PNG, atomically (a name not ending in ``.png`` is a ConfigError)."""
    path = check_output_file(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    return path


@contextlib.contextmanager
def interrupts_deferred():
    """Hold back SIGINT (Ctrl-C) while the block runs; raise KeyboardInterrupt after it if one came.

    For writes that belong together (a checkpoint and the metrics of the same epoch): an
    interrupt lands before or after them, never between.  Outside the main thread, or when
    SIGINT is not handled by Python's default handler, the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


# ---------------------------------------------------------------------------- locks
def _proc_stat(pid):
    """(state letter, start time in clock ticks since boot) of process ``pid`` from ``/proc``.

    ``("gone", None)`` when the process does not exist, ``(None, None)`` when it cannot be told.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            data = fh.read()
        rest = data[data.rindex(")") + 2:].split()
        return rest[0], int(rest[19])
    except FileNotFoundError:
        return ("gone", None) if os.path.isdir("/proc/self") else (None, None)
    except (OSError, ValueError, IndexError):
        return None, None


def _process_start(pid):
    return _proc_stat(pid)[1]


def _alive(pid, started=None) -> bool:
    """Whether process ``pid`` of this host still runs (and is the one that started at ``started``)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user's process
        return True
    state, start = _proc_stat(pid)
    if state in ("gone", "Z", "X"):  # a zombie has finished running
        return False
    return not (started is not None and start is not None and start != started)  # else: its pid reused


class FolderLock:
    """A lock file (``pid``, ``host``, start time, a note) held while one process writes a folder.

    :meth:`acquire` creates the file exclusively.  If it exists, the holder is asked after: a
    process of this host that is no longer running leaves a stale lock, which is taken over
    with a message on stderr; a live holder (or one on another host, which cannot be asked)
    makes :meth:`acquire` raise :class:`~vpf_spiking.errors.ConfigError` naming it.
    """

    def __init__(self, path, note=""):
        self.path = Path(path)
        self.note = str(note)
        self.held = False

    def info(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "process_start": _process_start(os.getpid()), "note": self.note}

    def read(self):
        """The holder's entry as a dict, or None when the file is missing, empty or garbled."""
        try:
            entry = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return entry if isinstance(entry, dict) else {}

    def acquire(self) -> "FolderLock":
        text = json.dumps(self.info())
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_or_refuse()
                continue
            except OSError as exc:
                raise named_os_error(exc, self.path) from None
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
            self.held = True
            return self
        raise ConfigError(f"{self.path}: could not take the lock (another run keeps taking it); try again")

    def _take_over_or_refuse(self):
        holder = self.read()
        if holder is None:
            return  # released meanwhile
        pid, host = holder.get("pid"), holder.get("host")
        folder = self.path.parent
        if not isinstance(pid, int) or not host:
            try:
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                return
            if age < 10:
                raise ConfigError(f"{folder}: another run is starting to write here (lock file {self.path}); "
                                  f"wait for it or choose another --out")
            print(f"vpf: taking over the unreadable lock file {self.path} (written {age:.0f} s ago)", file=sys.stderr)
        elif host != socket.gethostname():
            raise ConfigError(f"{folder}: in use by process {pid} on host {host} since {holder.get('started')} "
                              f"(lock file {self.path}); wait for that run, or delete the lock file if it is gone")
        elif _alive(pid, holder.get("process_start")):
            raise ConfigError(f"{folder}: in use by a running process {pid} since {holder.get('started')} "
                              f"(lock file {self.path}); wait for it to finish or choose another --out")
        else:
            print(f"vpf: taking over the stale lock {self.path} of process {pid} (started {holder.get('started')}), "
                  f"which is no longer running", file=sys.stderr)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise named_os_error(exc, self.path) from None

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if not self.held:
            return
        self.held = False
        entry = self.read()
        if entry and entry.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


# ---------------------------------------------------------------------------- TOML
def write_toml(path, doc: dict, header: str = "") -> Path:
    """``doc`` as TOML (:func:`dump_toml`) after ``header`` (comment lines), atomically."""
    return atomic_write_text(path, header + dump_toml(doc))


def dump_toml(doc: dict) -> str:
    """Write a dict (scalars, lists, nested tables, arrays of tables) as TOML."""
    lines: list[str] = []

    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if math.isnan(v):
                return "nan"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string

    def key(k):
        return k if re.fullmatch(r"[A-Za-z0-9_\-]+", k) else json.dumps(k)

    def emit(d, prefix):
        subs = []
        for k, v in d.items():
            if isinstance(v, dict):
                subs.append((k, v, False))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                subs.append((k, v, True))
            else:
                lines.append(f"{key(k)} = {scalar(v)}")
        for k, v, is_array in subs:
            name = f"{prefix}{key(k)}"
            for item in (v if is_array else [v]):
                lines.append("")
                lines.append(f"[[{name}]]" if is_array else f"[{name}]")
                emit(item, name + ".")

    emit(doc, "")
    return "\n".join(lines).lstrip("\n") + "\n"


# ---------------------------------------------------------------------------- reading
def read_text(path, what="text") -> str:
    """The UTF-8 text of ``path``; ConfigError naming it when it is a folder or not UTF-8 text."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a {what} file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a {what} file (not UTF-8 text: byte {exc.start})") from None
    except OSError as exc:
        raise named_os_error(exc, path) from None


# ---------------------------------------------------------------------------- tagged npz
def file_signature(path, error, missing, folder, n=6) -> bytes:
    """The first ``n`` bytes of the file ``path`` (its magic number).

    Raises ``error`` with ``"<path>: <missing>"`` when there is no such file and ``"<path>:
    <folder>"`` when it is a folder; an unreadable file raises an OSError naming ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: {missing}")
    if path.is_dir():
        raise error(f"{path}: {folder}")
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise named_os_error(exc, path) from None


def read_tagged_npz(path, format_name, what, error):
    """All arrays of a pickle-free ``.npz`` whose ``format`` entry is ``format_name``.

    Raises ``error`` (a :class:`~vpf_spiking.errors.VPFError` subclass) naming the file for a
    missing, unreadable or foreign file.
    """
    path = Path(path)
    magic = file_signature(path, error, f"no such {what} file", f"is a folder, not a {what} file")
    if not magic.startswith(b"PK\x03\x04"):
        kind = " (it is a .npy array)" if magic == b"\x93NUMPY" else ""
        raise error(f"{path}: not a readable {what} file (not an .npz archive{kind})")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except MemoryError:
        raise
    except Exception as exc:  # zipfile/ValueError/OSError: all mean "not our file"
        msg = " ".join(str(exc).split())
        raise error(f"{path}: not a readable {what} file (.npz: {msg})") from None
    if "format" not in data or str(data["format"]) != format_name:
        raise error(f"{path}: not a vpf-spiking {what} (missing or wrong 'format' entry)")
    return data
