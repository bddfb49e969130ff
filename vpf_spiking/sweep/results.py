"""What a sweep keeps on disk: each point's state file, its summary figures, and the results tables.

Per point folder (``DIR/<point>/``, besides what ``vpf run`` writes there):

``sweep-point.json``
    written (atomically) when the point starts and again when it ends: the hash of the
    effective protocol, the status (``running``, ``done``, ``failed``), the attempt, the
    worker, the wall time, the one-line error and the summary figures.  A point whose file
    says ``done`` with the same protocol hash is complete and is skipped by a later sweep.
``sweep.log``
    the point's standard output and error.

In ``DIR``: ``results.csv`` and ``results.md`` (one row per point), rewritten atomically after
every finished point, and ``sweep.json`` (what was swept).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..io import atomic_write_text

__all__ = ["STATE_FILE", "LOG_FILE", "MAIN_TABLES", "read_state", "write_state", "is_complete",
           "summary_figures", "write_results", "atomic_write_text", "results_frame"]

STATE_FILE = "sweep-point.json"
LOG_FILE = "sweep.log"

#: kind -> the CSV whose last row holds the run's summary figures (numeric columns), and the
#: JSON files whose top-level numbers are added (prefixed by the file's stem).
MAIN_TABLES = {
    "train": ("metrics.csv", ()),
    "spiking-train": ("metrics.csv", ()),
    "reconstruction": ("reconstruction.csv", ()),
    "parzen": ("parzen.csv", ()),
    "ais": ("ais.csv", ()),
    "stdp": ("stdp.csv", ("fit-of-run.json",)),
    "rbm-experiment": ("training.csv", ()),
    "dbm-experiment": ("training.csv", ()),
}

#: Columns of results.csv that the sweep itself fills (summary figures never take these names).
RESERVED = ("point", "status", "wall_s", "error", "reused", "attempts", "worker")


def read_state(folder: Path) -> dict | None:
    """The point's ``sweep-point.json``, or None when absent or unreadable."""
    try:
        return json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(folder: Path, state: dict) -> None:
    atomic_write_text(Path(folder) / STATE_FILE, json.dumps(_jsonable(state), indent=1) + "\n")


def is_complete(folder: Path, protocol_hash: str) -> dict | None:
    """The state of a point finished earlier with the same effective protocol, else None."""
    state = read_state(folder)
    if state and state.get("status") == "done" and state.get("hash") == protocol_hash:
        return state
    return None


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):  # numpy scalars
        return _jsonable(obj.item())
    return obj


# ---------------------------------------------------------------------------- summary figures
def _last_row_numbers(csv: Path) -> dict:
    import pandas as pd

    try:
        df = pd.read_csv(csv)
    except Exception:  # empty or malformed: no figures rather than a failed point
        return {}
    if not len(df):
        return {}
    row = df.iloc[-1]
    out = {}
    for col in df.columns:
        if pd.api.types.is_numeric_dtype(df[col].dtype) and not pd.api.types.is_bool_dtype(df[col].dtype):
            v = row[col]
            if pd.isna(v):
                out[str(col)] = None
            else:
                out[str(col)] = int(v) if pd.api.types.is_integer_dtype(df[col].dtype) else float(v)
    return out


def _json_numbers(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    out = {}
    for k, v in doc.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{path.stem}.{k}"] = v
        elif isinstance(v, dict):
            for k2, v2 in v.items():
                if isinstance(v2, (int, float)) and not isinstance(v2, bool):
                    out[f"{path.stem}.{k}.{k2}"] = v2
    return out


def main_table(folder: Path, kind: str) -> Path | None:
    """The CSV holding a run's summary: the kind's (see :data:`MAIN_TABLES`), else
    ``metrics.csv``, else the folder's only CSV."""
    folder = Path(folder)
    name = MAIN_TABLES.get(kind, (None, ()))[0]
    if name and (folder / name).is_file():
        return folder / name
    if (folder / "metrics.csv").is_file():
        return folder / "metrics.csv"
    csvs = sorted(folder.glob("*.csv"))
    return csvs[0] if len(csvs) == 1 else None


def summary_figures(folder: Path, kind: str) -> dict:
    """The run's summary figures: the last row's numeric columns of its main CSV, plus the
    numbers of the kind's JSON files (``fit-of-run.*`` for ``stdp``)."""
    folder = Path(folder)
    out = {}
    table = main_table(folder, kind)
    if table is not None:
        out.update(_last_row_numbers(table))
    for name in MAIN_TABLES.get(kind, (None, ()))[1]:
        if (folder / name).is_file():
            out.update(_json_numbers(folder / name))
    return out


# ---------------------------------------------------------------------------- results tables
def results_frame(rows: list[dict], grid_keys: list[str]):
    """A DataFrame of the rows, columns ordered: point, grid keys, status, wall_s, ..., figures."""
    import pandas as pd

    fixed = ["point", *grid_keys, "status", "wall_s", "reused", "attempts", "worker", "error"]
    seen = list(fixed)
    figures = []
    for r in rows:
        for k in r.get("summary", {}) or {}:
            col = _figure_column(k, grid_keys)
            if col not in seen:
                seen.append(col)
                figures.append(col)
    records = []
    for r in rows:
        rec = {"point": r["point"]}
        for k in grid_keys:
            rec[k] = _cell(r["values"].get(k))
        rec.update(status=r.get("status"), wall_s=r.get("wall_s"), reused=bool(r.get("reused", False)),
                   attempts=r.get("attempts"), worker=r.get("worker") or "", error=r.get("error") or "")
        for k, v in (r.get("summary") or {}).items():
            rec[_figure_column(k, grid_keys)] = v
        records.append(rec)
    df = pd.DataFrame.from_records(records, columns=fixed + figures)
    if len(df):
        df["wall_s"] = pd.to_numeric(df["wall_s"], errors="coerce").round(3)
        df["attempts"] = pd.to_numeric(df["attempts"], errors="coerce").astype("Int64")
        for col in figures:  # whole-number figures (epoch, ...) stay whole next to failed points
            vals = [r.get("summary", {}).get(k) for r in rows for k in (r.get("summary") or {})
                    if _figure_column(k, grid_keys) == col]
            vals = [v for v in vals if v is not None]
            if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
                df[col] = df[col].astype("Int64")
    return df


def _figure_column(name: str, grid_keys) -> str:
    return f"run.{name}" if name in RESERVED or name in grid_keys else name


def _cell(value):
    if isinstance(value, (list, tuple)):
        from .grid import value_text

        return value_text(list(value))
    return value


def write_results(out: Path, df) -> None:
    """``results.csv`` and ``results.md`` in ``out``, each written atomically."""
    out = Path(out)
    atomic_write_text(out / "results.csv", df.to_csv(index=False))
    shown = df.copy()
    shown["error"] = shown["error"].astype(str).str.slice(0, 200)
    try:
        table = shown.to_markdown(index=False, floatfmt=".4g")
    except ImportError:  # tabulate missing
        table = shown.to_string(index=False)
    done = int((df["status"] == "done").sum())
    failed = int((df["status"] == "failed").sum())
    header = (f"# Sweep results\n\n{len(df)} points: {done} done, {failed} failed, "
              f"{len(df) - done - failed} not finished (updated {time.strftime('%Y-%m-%d %H:%M:%S')}).\n\n")
    atomic_write_text(out / "results.md", header + table + "\n")
