"""Loading and running protocol files: ``vpf run PROTOCOL.toml`` and :func:`run_protocol`.

The runner looks the ``kind`` up in :data:`~vpf_spiking.protocols.kinds.KINDS`, creates the
output folder (default ``runs/<name>/``), writes the effective protocol (``protocol.toml``,
overrides applied) and the command that started it (``command.txt``) there, and calls the
kind's function with ``(config, out_dir)`` (and ``resume=`` when the function accepts it).
"""

from __future__ import annotations

import inspect
import re
import shlex
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..resources import resolve_shipped
from .config import ProtocolConfig, apply_overrides, dump_toml
from .kinds import KINDS


def load_protocol(path) -> ProtocolConfig:
    """Read a protocol file (or a shipped one by name: ``demo``); check its TOML and ``kind``."""
    path = resolve_shipped(path, "protocols", "protocol")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file") from None
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


def run_protocol(path_or_dict, out_dir=None, overrides=None, resume=False, command=None):
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
    out.mkdir(parents=True, exist_ok=True)

    accepts_resume = "resume" in inspect.signature(func).parameters
    if resume and not accepts_resume:
        raise ConfigError(f"kind {config['kind']!r} cannot resume (run it again without --resume)")

    header = f"# effective protocol, written by vpf at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    header += f"# source: {config.source}\n"
    if config.overrides:
        header += f"# overrides: {' '.join(config.overrides)}\n"
    (out / "protocol.toml").write_text(header + dump_toml(dict(config)), encoding="utf-8")
    if command is None:
        command = shlex.join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv and sys.argv[0] else "python"
    with open(out / "command.txt", "a", encoding="utf-8") as fh:
        fh.write(command + "\n")

    kwargs = {"resume": resume} if accepts_resume else {}
    return func(config, out, **kwargs)
