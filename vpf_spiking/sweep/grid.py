"""The points of a sweep: grids from ``--grid KEY=V1,V2`` or a ``[sweep]`` table, and their names.

A grid maps dotted protocol keys (as for ``vpf run --set``) to lists of values.  The points are
the product of the grids (the last key varies fastest) or, with ``zip``, the values paired in
order.  Each point is a :class:`Point`: the typed values, the ``KEY=VALUE`` overrides that
``vpf run --set`` would receive, and a folder name that depends only on the grid keys and the
point's values (so a sweep run again finds its finished points).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["Point", "parse_grid_item", "parse_grid", "grid_from_table", "make_points", "point_name",
           "format_value", "value_text"]

_KEY = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_SAFE = re.compile(r"[^A-Za-z0-9._+\-]+")
#: Longest folder name before it is shortened (and a hash of the values appended).
MAX_NAME = 120


@dataclass(frozen=True)
class Point:
    """One point of a sweep.

    Attributes
    ----------
    values : dict
        Grid key -> typed value (int, float, str, bool or list), in grid order.
    overrides : tuple of str
        ``KEY=VALUE`` items, exactly as given to ``vpf run --set``.
    name : str
        The point's folder name (filesystem-safe, stable; see :func:`point_name`).
    """

    values: dict
    overrides: tuple
    name: str = ""
    texts: dict = field(default_factory=dict, compare=False)


# ---------------------------------------------------------------------------- values
def _typed(raw: str):
    """The value ``--set KEY=raw`` gives (TOML, else a plain string), via the protocol machinery."""
    from ..protocols import ProtocolConfig, apply_overrides

    return apply_overrides(ProtocolConfig({}, source="--grid"), [f"v={raw}"])["v"]


def value_text(value) -> str:
    """``value`` as TOML text (what ``--set KEY=<text>`` reads back as ``value``)."""
    if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
        raise ConfigError(f"a sweep value must be a number, string, boolean or array, not a table: {value!r}")
    from ..protocols import dump_toml

    return dump_toml({"v": value}).strip()[len("v = "):]


def format_value(value) -> str:
    """Short text of a value for names and tables: ``0.001``, ``cd``, ``true``, ``10-20`` (lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value) if value else "empty"
    return str(value)


def split_values(text: str) -> list:
    """Split ``V1,V2,...`` at commas outside brackets, braces and quotes."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if quote or depth:
        raise ConfigError(f"unbalanced {'quote' if quote else 'brackets'} in {text!r}")
    parts.append("".join(cur).strip())
    return parts


# ---------------------------------------------------------------------------- grids
def _check_key(key: str, where: str) -> str:
    key = key.strip()
    if not key or not _KEY.fullmatch(key):
        raise ConfigError(f"{where}: expected KEY=V1,V2,... with a dotted protocol key, e.g. "
                          f"training.learning_rate=1e-3,1e-2")
    return key


def _check_values(key: str, values: list, where: str) -> None:
    if not values:
        raise ConfigError(f"{where}: {key} has no values")
    seen = set()
    for v in values:
        t = value_text(v)
        if t in seen:
            raise ConfigError(f"{where}: {key} lists the value {t} twice")
        seen.add(t)


def parse_grid_item(item: str) -> tuple[str, list, list]:
    """``"KEY=V1,V2"`` -> (key, typed values, value texts for ``--set``); ConfigError if malformed."""
    where = f"--grid {item!r}"
    key, sep, rest = str(item).partition("=")
    if not sep:
        raise ConfigError(f"{where}: expected KEY=V1,V2,... with a dotted protocol key, e.g. "
                          f"training.learning_rate=1e-3,1e-2")
    key = _check_key(key, where)
    try:
        texts = split_values(rest)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if any(t == "" for t in texts):
        raise ConfigError(f"{where}: empty value (values are separated by commas: {key}=1,2,3)")
    values = [_typed(t) for t in texts]
    _check_values(key, values, where)
    return key, values, texts


def parse_grid(items) -> dict:
    """Grid from ``--grid`` items, a dict ``{key: [values]}``, or a mix; key -> (values, texts).

    Strings are read as on the command line (values typed as ``--set`` types them); dict
    values are typed already (a scalar is a grid of one value).
    """
    if items is None:
        return {}
    if isinstance(items, (str, dict)):
        items = [items]
    grid = {}
    for item in items:
        if isinstance(item, str):
            key, values, texts = parse_grid_item(item)
            entries = [(key, values, texts)]
        elif isinstance(item, dict):
            entries = []
            for key, values in _flatten(item, "", "grid"):
                key = _check_key(key, f"grid key {key!r}")
                values = list(values) if isinstance(values, (list, tuple)) else [values]
                _check_values(key, values, "grid")
                entries.append((key, values, [value_text(v) for v in values]))
        else:
            raise ConfigError(f"a grid is 'KEY=V1,V2' strings or a dict of lists, got {type(item).__name__}")
        for key, values, texts in entries:
            if key in grid:
                raise ConfigError(f"grid key {key} is given twice")
            grid[key] = (values, texts)
    _check_nesting(grid)
    return grid


def _flatten(d: dict, prefix: str, where: str):
    """(dotted key, values) pairs of a nested table whose leaves are lists of values."""
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if not v:
                raise ConfigError(f"{where}: {key} is an empty table")
            yield from _flatten(v, key + ".", where)
        else:
            yield key, v


def _check_nesting(grid: dict) -> None:
    keys = sorted(grid)
    for a, b in zip(keys, keys[1:]):
        if b.startswith(a + "."):
            raise ConfigError(f"grid keys {a} and {b} overlap (one is inside the other)")


def grid_from_table(config: dict, source: str) -> list[tuple[dict, bool]]:
    """The grids of a protocol's ``[sweep]`` table (or ``[[sweep]]`` tables): [(grid, zip)].

    ::

        [sweep]
        zip = false                       # optional: pair the lists instead of their product
        training.learning_rate = [1e-3, 1e-2]
        training.method = ["vpf", "cd"]

    Several ``[[sweep]]`` tables give the union of their points.
    """
    tables = config.get("sweep")
    if tables is None:
        return []
    if isinstance(tables, dict):
        tables = [tables]
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{source}: [sweep] must be a table (or [[sweep]] tables) of KEY = [values]")
    out = []
    for i, t in enumerate(tables):
        where = f"{source}: [sweep]" if len(tables) == 1 else f"{source}: [[sweep]] number {i + 1}"
        t = dict(t)
        zipped = t.pop("zip", False)
        if not isinstance(zipped, bool):
            raise ConfigError(f"{where}: zip must be true or false, got {zipped!r}")
        if not t:
            raise ConfigError(f"{where}: no grid keys (write e.g. training.learning_rate = [1e-3, 1e-2])")
        for key, values in _flatten(t, "", where):
            if not isinstance(values, list):
                raise ConfigError(f"{where}: {key} must be an array of values, got {values!r}")
        try:
            out.append((parse_grid(t), zipped))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return out


def make_points(grid: dict, zip: bool = False) -> list[Point]:
    """The points of one grid (product, or paired with ``zip``), named; see :func:`parse_grid`."""
    if not grid:
        return []
    keys = list(grid)
    if zip:
        lengths = {k: len(grid[k][0]) for k in keys}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k}: {n} values" for k, n in lengths.items())
            raise ConfigError(f"zip needs grids of equal length; got {shown}")
        index_sets = [(i,) * len(keys) for i in range(lengths[keys[0]])]
    else:
        index_sets = list(itertools.product(*[range(len(grid[k][0])) for k in keys]))
    points = []
    for idx in index_sets:
        values = {k: grid[k][0][i] for k, i in zip_(keys, idx)}
        texts = {k: grid[k][1][i] for k, i in zip_(keys, idx)}
        points.append(Point(values=values, overrides=tuple(f"{k}={texts[k]}" for k in keys), texts=texts))
    return points


zip_ = zip  # the builtin, shadowed by the ``zip`` argument above


def combine(point_lists) -> list[Point]:
    """The union of several grids' points (first occurrence kept), each given its folder name."""
    points, seen = [], set()
    all_keys = []
    for pts in point_lists:
        for p in pts:
            ident = json.dumps({k: value_text(v) for k, v in p.values.items()}, sort_keys=True)
            if ident in seen:
                continue
            seen.add(ident)
            points.append(p)
            all_keys.extend(k for k in p.values if k not in all_keys)
    labels = short_labels(all_keys)
    named = [Point(p.values, p.overrides, point_name(p.values, labels), p.texts) for p in points]
    # different values that sanitise to the same name (e.g. "a b" and "a-b", or "CD" and "cd" on
    # a case-insensitive disk): give those the hash of their exact values
    counts: dict = {}
    for p in named:
        counts[p.name.lower()] = counts.get(p.name.lower(), 0) + 1
    return [Point(p.values, p.overrides, _with_hash(p.name, p.values), p.texts)
            if counts[p.name.lower()] > 1 else p for p in named]


# ---------------------------------------------------------------------------- names
def short_labels(keys) -> dict:
    """Key -> shortest dotted suffix that tells it apart (``training.learning_rate`` -> ``learning_rate``)."""
    keys = list(keys)
    labels = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if not any(o != k and (o == cand or o.endswith("." + cand)) for o in keys):
                break
        labels[k] = cand
    return labels


def _values_hash(values: dict) -> str:
    ident = json.dumps({k: value_text(v) for k, v in values.items()}, sort_keys=True)
    return hashlib.sha1(ident.encode()).hexdigest()[:8]


def _with_hash(name: str, values: dict) -> str:
    return f"{name[:MAX_NAME - 9]}~{_values_hash(values)}"


def point_name(values: dict, labels: dict | None = None) -> str:
    """Folder name of a point: ``learning_rate=0.001_method=cd``.

    Keys are shortened to their shortest distinguishing suffix (``labels``); values are written
    as by :func:`format_value`.  Characters outside ``A-Z a-z 0-9 . _ + -`` become ``-``; when
    that loses information, or the name would exceed :data:`MAX_NAME` characters, ``~`` and a
    hash of the exact values are appended, so distinct points never share a folder.
    """
    labels = labels or short_labels(values)
    parts, lossy = [], False
    for k, v in values.items():
        text = format_value(v)
        safe = _SAFE.sub("-", text) or "empty"
        lossy |= safe != text
        parts.append(f"{labels.get(k, k)}={safe}")
    name = "_".join(parts)
    if lossy or len(name) > MAX_NAME:
        name = _with_hash(name, values)
    return name
