"""Training data: MNIST and Fashion-MNIST (IDX files checked by SHA-256) and the user's own arrays.

Where a data-set file is looked for, first hit wins:

1. the folder passed as ``data_dir`` (``--data-dir`` on the command line);
2. the folder in the environment variable ``VPF_DATA_DIR``;
3. the user cache, ``$XDG_CACHE_HOME/vpf-spiking`` (default ``~/.cache/vpf-spiking``);
4. the system folders in :data:`SYSTEM_DIRS` (the Debian package ``dataset-fashion-mnist``
   installs ``/usr/share/datasets/fashion-mnist``);
5. a download from the data set's public mirrors into the user cache (unless ``download=False``).

Inside a folder both ``<folder>/<dataset>/<file>`` and ``<folder>/<file>`` are accepted, each
raw or gzip-compressed (with or without the ``.gz`` suffix: the magic bytes decide). The
decompressed bytes must match :data:`CHECKSUMS`; a file in a flat folder that is recognised as
the *other* data set's file (MNIST and Fashion-MNIST share file names) is skipped.

Decoded files are cached per process, so repeated loads cost one array conversion.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .idx import _decode, _decode_cached, _decompress_if_gzip, _one_line, _parse_idx, read_idx  # noqa: F401
from .user_data import BINARIZE_HINT, _npz_keys, load_user_data, split_validation  # noqa: F401

__all__ = [
    "DATASETS", "CHECKSUMS", "SPLITS", "SYSTEM_DIRS", "DOWNLOAD_TIMEOUT",
    "load_images", "load_labels", "split_validation", "load_user_data", "resolve_data",
    "check_data", "download", "read_idx", "cache_dir", "has_split", "BINARIZE_HINT",
]

@dataclass(frozen=True)
class DatasetInfo:
    """What the loaders need to know about one data set."""

    name: str
    title: str
    mirrors: tuple
    files: dict          # split -> (images file, labels file), names without .gz
    sizes: dict          # split -> number of examples
    class_names: tuple
    image_shape: tuple = (28, 28)

    @property
    def all_files(self) -> list:
        return [f for split in SPLITS for f in self.files[split]]


SPLITS = ("train", "test")

_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

DATASETS = {
    "mnist": DatasetInfo(
        name="mnist", title="MNIST",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        files=_IDX_FILES, sizes={"train": 60000, "test": 10000},
        class_names=tuple(str(d) for d in range(10))),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist", title="Fashion-MNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=_IDX_FILES, sizes={"train": 60000, "test": 10000},
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot")),
}

# SHA-256 of the *decompressed* IDX files (gzip wrappers differ between mirrors).
CHECKSUMS = {
    "mnist/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "mnist/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "mnist/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "mnist/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "fashion-mnist/train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "fashion-mnist/train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "fashion-mnist/t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "fashion-mnist/t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

SYSTEM_DIRS = (Path("/usr/share/datasets"),)

DOWNLOAD_TIMEOUT = 60.0  # seconds without progress before a mirror is given up

# --------------------------------------------------------------------------------------------
# Finding files

def cache_dir() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/vpf-spiking``, default ``~/.cache/vpf-spiking``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vpf-spiking"


def _dataset(name) -> DatasetInfo:
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else None
    if key not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


def _check_split(split) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test' "
                        "(split_validation() carves a validation set out of 'train')")
    return split


def _search_dirs(data_dir) -> list:
    """[(source, folder)] in lookup order; explicitly named folders must exist."""
    dirs = []
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"data folder {folder} does not exist (from --data-dir/data_dir)")
        dirs.append(("data_dir", folder))
    env = os.environ.get("VPF_DATA_DIR", "").strip()
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise DataError(f"VPF_DATA_DIR={env} is not a folder; fix or unset the variable")
        dirs.append(("VPF_DATA_DIR", folder))
    dirs.append(("cache", cache_dir()))
    dirs.extend(("system", Path(d)) for d in SYSTEM_DIRS)
    seen, unique = set(), []
    for source, folder in dirs:
        key = folder.resolve() if folder.exists() else folder
        if key not in seen:
            seen.add(key)
            unique.append((source, folder))
    return unique


def _candidates(folder: Path, info: DatasetInfo, filename: str):
    """(path, flat) pairs: the nested layout first, then the flat one."""
    for base, flat in ((folder / info.name, False), (folder, True)):
        for name in (filename, filename + ".gz"):
            yield base / name, flat


def _owner(sha: str):
    for key, value in CHECKSUMS.items():
        if value == sha:
            return key
    return None


def _find(info: DatasetInfo, filename: str, data_dir):
    """((source, path, array) of the first verified copy or three Nones, folders searched).

    A found file that fails to decode or verify raises :class:`DataError` rather than falling
    through to a later folder: the user should learn that their copy is bad.
    """
    key = f"{info.name}/{filename}"
    expected = CHECKSUMS[key]
    searched = []
    for source, folder in _search_dirs(data_dir):
        searched.append(str(folder))
        if not folder.is_dir():
            continue
        for path, flat in _candidates(folder, info, filename):
            if not path.is_file():
                continue
            array, sha = _decode(path)
            if sha == expected:
                return (source, path, array), searched
            owner = _owner(sha)
            if flat and owner is not None and not owner.startswith(info.name + "/"):
                continue  # a flat folder holding the other data set's file of the same name
            what = f" (it is {owner})" if owner else ""
            raise DataError(f"{path}: SHA-256 mismatch for {key}: expected {expected[:16]}..., "
                            f"got {sha[:16]}...{what}; the file is damaged or not the original, "
                            "delete or replace it")
    return (None, None, None), searched


def _help_local(info: DatasetInfo, capital=False) -> str:
    files = ", ".join(f + "[.gz]" for f in info.all_files)
    text = (f"to use a local copy put {files} in DIR/{info.name}/ and set VPF_DATA_DIR=DIR "
            "or pass --data-dir DIR")
    if info.name == "fashion-mnist":
        text += " (or install the Debian package dataset-fashion-mnist)"
    return text[0].upper() + text[1:] if capital else text


def _mirror_urls(info: DatasetInfo, mirrors=None) -> list:
    if mirrors is None:
        env = os.environ.get("VPF_DATA_MIRRORS", "").strip()
        mirrors = env.replace(",", " ").split() if env else info.mirrors
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    urls = []
    for base in mirrors:
        base = str(base).replace("{dataset}", info.name)
        urls.append(base if base.endswith("/") else base + "/")
    return urls


def _failure_reason(exc) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return _one_line(exc.reason)
    return _one_line(f"{type(exc).__name__}: {exc}" if not str(exc) else exc)


def _fetch(info: DatasetInfo, filename: str, mirrors=None, timeout=None, searched=()) -> Path:
    """Download ``filename.gz`` into the cache, verify it, and move it into place atomically."""
    from .progress import progress_bar as tqdm

    key = f"{info.name}/{filename}"
    expected = CHECKSUMS[key]
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    dest_dir = cache_dir() / info.name
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache folder {dest_dir} ({_one_line(exc.strerror)}); "
                        f"set XDG_CACHE_HOME, or {_help_local(info)}") from None
    dest = dest_dir / (filename + ".gz")
    failures = []
    for base in _mirror_urls(info, mirrors):
        url = base + filename + ".gz"
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {key}",
                          disable=None, leave=False) as bar:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
            data = _decompress_if_gzip(Path(tmp).read_bytes(), url)
            _parse_idx(data, url)
            sha = hashlib.sha256(data).hexdigest()
            if sha != expected:
                failures.append(f"{url}: checksum mismatch (got {sha[:16]}..., "
                                f"expected {expected[:16]}...), file refused")
                continue
            os.replace(tmp, dest)
            return dest
        except DataError as exc:
            failures.append(str(exc))
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            failures.append(f"{url}: {_failure_reason(exc)}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    where = f"not found in {', '.join(searched)} and " if searched else ""
    raise DataError(f"{key}: {where}download failed ({'; '.join(failures) or 'no mirrors'}). "
                    f"Offline? {_help_local(info, capital=True)}")


def _load_file(info: DatasetInfo, filename: str, data_dir, download) -> np.ndarray:
    (_, _, array), searched = _find(info, filename, data_dir)
    if array is not None:
        return array
    key = f"{info.name}/{filename}"
    if not download:
        raise DataError(f"{key}: not found in {', '.join(searched)} (downloading is off); "
                        f"{_help_local(info)}")
    path = _fetch(info, filename, searched=searched)
    array, _ = _decode(path)
    return array


# --------------------------------------------------------------------------------------------
# Public loaders

def load_images(name, split="train", data_dir=None, binarize=True, download=True) -> np.ndarray:
    """Images of MNIST or Fashion-MNIST as a float32 ``(n, 784)`` matrix.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    split : {"train", "test"}
    data_dir : path, optional
        Folder searched first (see the module docstring for the lookup order).
    binarize : bool
        True: pixels/255 thresholded with ``> 0.5`` (so grey level 128 and above become 1,
        127 and below 0), values in {0, 1}. False: greyscale pixels/255 in [0, 1].
    download : bool
        Download into the user cache when no local copy is found.
    """
    info = _dataset(name)
    raw = _load_file(info, info.files[_check_split(split)][0], data_dir, download)
    if raw.ndim != 3 or raw.shape[1:] != info.image_shape or raw.dtype != np.uint8:
        raise DataError(f"{info.name}/{info.files[split][0]}: expected uint8 images of shape "
                        f"(n, 28, 28), found {raw.dtype} {raw.shape}")
    flat = raw.reshape(len(raw), -1)
    if binarize:
        return (flat > 127).astype(np.float32)  # pixel/255 > 0.5  <=>  pixel >= 128
    grey = flat.astype(np.float32)
    grey /= np.float32(255)
    return grey


def load_labels(name, split="train", data_dir=None, download=True) -> np.ndarray:
    """Class labels 0-9 as an int64 vector (arguments as in :func:`load_images`)."""
    info = _dataset(name)
    raw = _load_file(info, info.files[_check_split(split)][1], data_dir, download)
    if raw.ndim != 1:
        raise DataError(f"{info.name}/{info.files[split][1]}: expected a vector of labels, "
                        f"found shape {raw.shape}")
    return raw.astype(np.int64)


def download(name, mirrors=None, timeout=None, data_dir=None) -> list:
    """Fetch the files of a data set that are not found locally into the user cache.

    Returns the paths of all its files (found or downloaded). ``mirrors`` overrides the
    built-in mirrors (and ``VPF_DATA_MIRRORS``); ``{dataset}`` in a mirror is replaced by the
    data-set name.
    """
    info = _dataset(name)
    paths = []
    for filename in info.all_files:
        (_, path, _), searched = _find(info, filename, data_dir)
        if path is None:
            path = _fetch(info, filename, mirrors=mirrors, timeout=timeout, searched=searched)
        paths.append(path)
    return paths


def check_data(data_dir=None):
    """Where each data-set file is found and whether it verifies; nothing is downloaded.

    Returns a :class:`pandas.DataFrame` with one row per file and the columns ``dataset``,
    ``split``, ``kind`` (images/labels), ``file``, ``source`` (data_dir, VPF_DATA_DIR, cache,
    system, or empty), ``path``, ``status`` (``ok``, ``missing`` or ``bad``) and ``detail``.
    """
    import pandas as pd

    rows = []
    for info in DATASETS.values():
        for split in SPLITS:
            for kind, filename in zip(("images", "labels"), info.files[split]):
                row = {"dataset": info.name, "split": split, "kind": kind, "file": filename,
                       "source": "", "path": "", "status": "ok", "detail": ""}
                try:
                    (source, path, array), searched = _find(info, filename, data_dir)
                except DataError as exc:
                    row.update(status="bad", detail=str(exc))
                else:
                    if path is None:
                        row.update(status="missing", detail="searched " + ", ".join(searched))
                    else:
                        row.update(source=source, path=str(path), detail=f"shape {array.shape}")
                rows.append(row)
    return pd.DataFrame(rows)


def resolve_data(spec, split="train", data_dir=None, binarize=None) -> np.ndarray:
    """Training or test matrix for a data name or a file.

    Parameters
    ----------
    spec : str or path
        ``"mnist"``, ``"fashion-mnist"`` (see :func:`load_images`), or a ``.npy``/``.npz``
        file. A ``.npz`` may hold arrays named ``train`` and ``test``, chosen by ``split``;
        otherwise the file is the training data and asking for ``split="test"`` is an error.
    binarize : None or bool
        The one rule for non-binary data, as in :func:`load_user_data`.  For files: None
        (default) refuses values other than 0 and 1, True thresholds values in [0, 1] at
        ``> 0.5``, False keeps them as greyscale (values outside [0, 1] are refused).  For the
        data sets, whose images are greyscale, None and True both mean the standard
        thresholding of :func:`load_images` and False the greyscale images.
    """
    _check_split(split)
    if isinstance(spec, str):
        key = spec.strip().lower().replace("_", "-")
        if key in DATASETS:
            return load_images(key, split, data_dir=data_dir, binarize=binarize is not False)
    elif not isinstance(spec, os.PathLike):
        raise DataError(f"data must be a data-set name or a file path, got {spec!r}")
    path = Path(spec).expanduser()
    if not path.exists():
        if isinstance(spec, str) and path.suffix.lower() not in (".npy", ".npz") \
                and os.sep not in spec and "/" not in spec:
            raise DataError(f"unknown data set {spec!r}; choose one of: {', '.join(DATASETS)}, "
                            "or give a .npy/.npz file")
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a .npy/.npz file, or pass a data-set name "
                        "with --data-dir for a folder of MNIST files")
    keys = _npz_keys(path)
    if keys is not None and split in keys:
        return load_user_data(path, key=split, binarize=binarize)
    if split != "train":
        raise DataError(f"{path}: has no {split!r} array; store 'train' and 'test' arrays in "
                        "one .npz or pass the test data as its own file")
    if keys is not None and "train" not in keys and "test" in keys:
        raise DataError(f"{path}: has a 'test' array but no 'train' array")
    return load_user_data(path, binarize=binarize)


def has_split(spec, split) -> bool:
    """Whether ``spec`` (a data-set name or a file) holds a ``split`` array (data sets: both splits)."""
    if isinstance(spec, str) and spec.strip().lower().replace("_", "-") in DATASETS:
        return split in SPLITS
    path = Path(spec).expanduser()
    keys = _npz_keys(path) if path.is_file() else None
    return split == "train" if keys is None else (split in keys or (split == "train" and "test" not in keys))


