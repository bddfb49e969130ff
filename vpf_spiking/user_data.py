"""The user's own training data: ``.npy``/``.npz`` matrices, checked, with one rule for non-binary values.

The rule, the same for the CLI, protocols and Python: values must be exactly 0 or 1, unless the
caller asks to threshold values in [0, 1] at 0.5 (``binarize=True``, ``--binarize``,
``data.binarize = true``) or to keep them as greyscale (``binarize=False``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError
from .idx import _one_line
from .io import file_signature

__all__ = ["BINARIZE_HINT", "load_user_data", "split_validation"]

#: How to turn greyscale rows into 0/1 explicitly, named in every "not binary" message.
BINARIZE_HINT = ("to threshold values in [0, 1] at 0.5 pass --binarize (vpf train), data.binarize = true "
                 "(protocols) or binarize=True (Python)")


def split_validation(x, n_validation: int):
    """Split off the LAST ``n_validation`` rows as a validation set.

    Returns ``(train, valid)`` as views of ``x``. Apply it to the labels with the same
    ``n_validation`` to keep them aligned.
    """
    n = len(x)
    if isinstance(n_validation, bool) or not isinstance(n_validation, (int, np.integer)):
        raise ConfigError(f"n_validation must be a whole number, got {n_validation!r}")
    if not 0 <= n_validation < n:
        raise ConfigError(f"n_validation={n_validation} must be between 0 and {n - 1} "
                          f"(the data has {n} rows)")
    cut = n - int(n_validation)
    return x[:cut], x[cut:]


def _pick_array(keys, key, path) -> str:
    if key is not None:
        if key not in keys:
            raise DataError(f"{path}: has no array {key!r} (arrays: {', '.join(keys) or 'none'})")
        return key
    if len(keys) == 1:
        return keys[0]
    for candidate in ("x", "data"):
        if candidate in keys:
            return candidate
    raise DataError(f"{path}: holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                    "store one array, or name the data 'x' or 'data'")


def load_user_data(path, key=None, binarize=None) -> np.ndarray:
    """Load an ``(n, d)`` matrix from a ``.npy`` or ``.npz`` file as float32.

    Parameters
    ----------
    path : path
        A ``.npy`` file, or a ``.npz`` holding a single array or one named ``x`` or ``data``.
        Pickled (object) arrays are refused.
    key : str, optional
        The array to take from a ``.npz``.
    binarize : None or bool
        None (default): values must be exactly 0 or 1. True: values in [0, 1], thresholded
        with ``> 0.5``. False: values in [0, 1], returned as they are (greyscale).
    """
    path = Path(path).expanduser()
    try:
        magic = file_signature(path, DataError, "no such file", "is a folder, expected a .npy or .npz file")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({_one_line(exc.strerror or exc)})") from None
    # np.load treats anything that is neither .npy nor zip as a pickle; say what it really is.
    if magic.startswith(b"\x80"):
        raise DataError(f"{path}: holds a Python pickle, refused (pickles can run code); "
                        "save a numeric array with numpy.save")
    if not (magic == b"\x93NUMPY" or magic.startswith(b"PK\x03\x04")):
        raise DataError(f"{path}: not a .npy/.npz file (no NumPy or zip signature); "
                        "save the matrix with numpy.save or numpy.savez")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(f"{path}: holds a Python object array, refused (pickles can run "
                            "code); save a numeric array with numpy.save") from None
        raise DataError(f"{path}: not a readable .npy/.npz file ({_one_line(exc)})") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError: all mean "not our file"
        raise DataError(f"{path}: not a readable .npy/.npz file ({_one_line(exc)})") from None
    label = str(path)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            name = _pick_array(list(loaded.files), key, path)
            label = f"{path}[{name}]"
            try:
                x = loaded[name]
            except ValueError as exc:
                if "pickle" in str(exc).lower():
                    raise DataError(f"{label}: is an object array, refused (pickles can run "
                                    "code); store a numeric array") from None
                raise DataError(f"{label}: unreadable ({_one_line(exc)})") from None
            except Exception as exc:
                raise DataError(f"{label}: unreadable ({_one_line(exc)})") from None
    else:
        if key is not None:
            raise DataError(f"{path}: is a .npy file; key={key!r} only applies to .npz files")
        x = loaded
    return _check_user_matrix(x, label, binarize)


def _check_user_matrix(x, label, binarize) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{label}: dtype {x.dtype} is not numeric")
    if x.ndim != 2:
        hint = "; flatten it, e.g. x.reshape(len(x), -1)" if x.ndim > 2 else ""
        raise DataError(f"{label}: expected a 2-D matrix (n_examples, n_features), "
                        f"found shape {x.shape}{hint}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{label}: empty matrix of shape {x.shape}")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            what = "NaN" if np.isnan(x[i, j]) else "infinite values"
            raise DataError(f"{label}: contains {what} (first at row {i}, column {j})")
    if binarize is None:
        bad = (x != 0) & (x != 1)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"{label}: not binary (value {x[i, j]} at row {i}, column {j}); "
                            f"values must be 0 or 1; {BINARIZE_HINT}")
        return x.astype(np.float32)
    bad = (x < 0) | (x > 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"{label}: value {x[i, j]} at row {i}, column {j} is outside [0, 1]; "
                        "scale the data to [0, 1] (e.g. pixels / 255)")
    if binarize:
        return (x > 0.5).astype(np.float32)
    return x.astype(np.float32)


def _npz_keys(path: Path):
    """Array names if ``path`` is a readable .npz, else None (load_user_data reports problems)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                return None
        with np.load(path, allow_pickle=False) as f:
            return list(f.files)
    except Exception:
        return None
