"""Where the shipped ``networks/`` and ``protocols/`` folders are.

In a checkout (or an editable install) they sit beside the package; a regular ``pip install``
copies them to ``<prefix>/share/vpf-spiking/`` (see ``[tool.setuptools.data-files]``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import ConfigError

_CHECKOUT = Path(__file__).resolve().parent.parent


def shipped_dir(kind: str) -> Path:
    """The folder of shipped ``kind`` files ("networks" or "protocols")."""
    for root in (_CHECKOUT, Path(sys.prefix) / "share" / "vpf-spiking"):
        if (root / kind).is_dir():
            return root / kind
    return _CHECKOUT / kind


def resolve_shipped(path_or_name, kind: str, what: str) -> Path:
    """A path to an existing file, or the stem of a shipped ``kind/<stem>.toml`` file."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    if p.is_dir():
        raise ConfigError(f"{path_or_name}: is a folder, expected a {what} .toml file")
    folder = shipped_dir(kind)
    shipped = folder / f"{p.stem}.toml"
    if p.suffix in ("", ".toml") and p.parent in (Path("."), Path(kind)) and shipped.is_file():
        return shipped
    known = ", ".join(sorted(f.stem for f in folder.glob("*.toml"))) or "none"
    raise ConfigError(f"{path_or_name}: no such {what} file (shipped {kind}: {known})")


# ---------------------------------------------------------------------------- memory
def format_bytes(n) -> str:
    """``1536`` -> ``"1.5 KiB"``; binary units up to EiB."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def available_memory():
    """Bytes this process can still allocate, or None when it cannot be told.

    The smallest of: ``MemAvailable`` in ``/proc/meminfo``, the cgroup (v2 or v1) limit minus
    its usage, and the address-space limit (``ulimit -v``).
    """
    limits = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file, encoding="ascii") as fh:
                raw = fh.read().strip()
            if raw == "max":
                continue
            with open(usage_file, encoding="ascii") as fh:
                used = int(fh.read().strip())
            limit = int(raw)
            if limit < 1 << 60:  # v1 reports "no limit" as a huge number
                limits.append(max(0, limit - used))
        except (OSError, ValueError):
            continue
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            limits.append(soft)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        pass
    if not limits:
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):  # pragma: no cover
            return None
    return min(limits)


def require_memory(nbytes: int, what: str, error=ConfigError) -> None:
    """Raise ``error`` (one line naming both sizes) when ``nbytes`` exceed :func:`available_memory`."""
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise error(f"{what} needs {format_bytes(nbytes)} of memory, but only {format_bytes(avail)} is available; "
                    f"use fewer or smaller layers")
