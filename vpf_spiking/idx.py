"""IDX files (the format of MNIST and Fashion-MNIST), raw or gzip-compressed, decoded and cached per process."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _decompress_if_gzip(raw: bytes, label) -> bytes:
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{label}: corrupt gzip file ({_one_line(exc)})") from None


def _parse_idx(data: bytes, label) -> np.ndarray:
    """Decode IDX bytes (magic 0 0 type ndim, big-endian uint32 dims, then the values)."""
    if len(data) < 4:
        raise DataError(f"{label}: truncated IDX file ({len(data)} bytes, no header)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or not 1 <= data[3] <= 4:
        raise DataError(f"{label}: not an IDX file (wrong magic number 0x{data[:4].hex()}; "
                        "expected 0x0000TTNN with a known type TT and 1-4 dimensions)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{label}: truncated IDX file (header needs {header} bytes, "
                        f"file has {len(data)})")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    need = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < need:
        raise DataError(f"{label}: truncated IDX file (shape {shape} needs {need} bytes, "
                        f"file has {len(data)})")
    if len(data) > need:
        raise DataError(f"{label}: {len(data) - need} unexpected bytes after the IDX data "
                        f"of shape {shape}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def _read_file_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({_one_line(exc.strerror or exc)})") from None
    return _decompress_if_gzip(raw, path)


@lru_cache(maxsize=16)
def _decode_cached(path: str, mtime_ns: int, size: int):
    # Keyed on mtime and size so that a replaced file is read again.
    data = _read_file_bytes(Path(path))
    array = _parse_idx(data, path)
    array.flags.writeable = False
    return array, hashlib.sha256(data).hexdigest()


def _decode(path: Path):
    """(read-only array, sha256 of the decompressed bytes) for an IDX file, cached per process."""
    try:
        st = path.stat()
    except OSError:
        raise DataError(f"{path}: no such file") from None
    return _decode_cached(str(path), st.st_mtime_ns, st.st_size)


def read_idx(path) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (detected by its magic bytes); no checksum.

    Returns a fresh, writable array in native byte order with the file's shape.
    """
    array, _ = _decode(Path(path))
    return array.astype(array.dtype.newbyteorder("="))
