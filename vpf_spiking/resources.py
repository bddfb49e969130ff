"""Where the shipped ``networks/`` and ``protocols/`` folders are.

In a checkout (or an editable install) they sit beside the package; a regular ``pip install``
copies them to ``<prefix>/share/vpf-spiking/`` (see ``[tool.setuptools.data-files]``).
"""

from __future__ import annotations

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
    folder = shipped_dir(kind)
    shipped = folder / f"{p.stem}.toml"
    if p.suffix in ("", ".toml") and p.parent in (Path("."), Path(kind)) and shipped.is_file():
        return shipped
    known = ", ".join(sorted(f.stem for f in folder.glob("*.toml"))) or "none"
    raise ConfigError(f"{path_or_name}: no such {what} file (shipped {kind}: {known})")
