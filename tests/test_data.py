"""Data loading: IDX decoding, checksums, lookup order, downloads, user arrays, real data."""

import gzip
import hashlib
import socket
import struct
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from vpf_spiking import data
from vpf_spiking.errors import ConfigError, DataError

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
T_IMAGES, T_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx_bytes(array, code=0x08):
    array = np.asarray(array)
    dtype = {0x08: "u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def sha(raw):
    return hashlib.sha256(raw).hexdigest()


def one_line_error(excinfo, *fragments):
    """The message is a single line that contains every fragment."""
    msg = str(excinfo.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    return msg


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the real environment, home cache or system folders."""
    monkeypatch.delenv("VPF_DATA_DIR", raising=False)
    monkeypatch.delenv("VPF_DATA_MIRRORS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data, "SYSTEM_DIRS", ())
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 5.0)


@pytest.fixture
def tiny():
    """Five 28x28 'images' covering the threshold, their labels, and the IDX bytes of both."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    images[0, 0, :4] = [0, 127, 128, 255]
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    return {"images": images, "labels": labels,
            IMAGES: idx_bytes(images), LABELS: idx_bytes(labels),
            T_IMAGES: idx_bytes(images[:2]), T_LABELS: idx_bytes(labels[:2])}


def accept(monkeypatch, tiny, dataset="mnist"):
    """Make the tiny files the 'official' ones of ``dataset``."""
    for name in (IMAGES, LABELS, T_IMAGES, T_LABELS):
        monkeypatch.setitem(data.CHECKSUMS, f"{dataset}/{name}", sha(tiny[name]))


def write(folder, name, raw, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name + (".gz" if compress else ""))
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


# ---------------------------------------------------------------------------------------------
# IDX decoding and its errors

def test_read_idx_gzip_detected_by_magic_not_extension(tmp_path, tiny):
    raw = tiny[IMAGES]
    (tmp_path / "plain.gz").write_bytes(raw)               # raw bytes behind a .gz name
    (tmp_path / "packed").write_bytes(gzip.compress(raw))  # gzip without the suffix
    for name in ("plain.gz", "packed"):
        out = data.read_idx(tmp_path / name)
        np.testing.assert_array_equal(out, tiny["images"])
        out[0, 0, 0] = 7  # a fresh, writable copy


def test_read_idx_other_types(tmp_path):
    values = np.arange(6, dtype=np.int32).reshape(2, 3) - 2
    (tmp_path / "i4").write_bytes(idx_bytes(values, 0x0C))
    out = data.read_idx(tmp_path / "i4")
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


@pytest.mark.parametrize("mangle, fragment", [
    (lambda raw: b"\x08\x03" + raw[2:], "wrong magic number"),
    (lambda raw: raw[:2] + b"\x42" + raw[3:], "wrong magic number"),
    (lambda raw: raw[:-10], "truncated IDX file"),
    (lambda raw: raw[:9], "truncated IDX file (header"),
    (lambda raw: raw[:2], "truncated IDX file (2 bytes"),
    (lambda raw: raw + b"\0\0\0", "3 unexpected bytes"),
])
def test_idx_structure_errors(tmp_path, tiny, mangle, fragment):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(mangle(tiny[IMAGES])))
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    one_line_error(excinfo, str(path), fragment)


@pytest.mark.parametrize("mangle", [
    lambda gz: gz[: len(gz) // 2],                       # cut off mid-stream
    lambda gz: gz[:12] + bytes(b ^ 0x5A for b in gz[12:]),  # garbled deflate data
    lambda gz: gz[:-8] + b"\0" * 8,                      # wrong CRC and length
])
def test_corrupt_gzip(tmp_path, tiny, mangle):
    path = tmp_path / "broken.gz"
    path.write_bytes(mangle(gzip.compress(tiny[IMAGES])))
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    one_line_error(excinfo, str(path), "corrupt gzip file")


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError) as excinfo:
        data.read_idx(tmp_path / "nope")
    one_line_error(excinfo, "nope", "no such file")


# ---------------------------------------------------------------------------------------------
# Loading the data sets from folders

def test_load_tiny_images_and_labels(tmp_path, tiny, monkeypatch):
    accept(monkeypatch, tiny)
    for name in (IMAGES, LABELS):
        write(tmp_path / "mnist", name, tiny[name])
    x = data.load_images("mnist", data_dir=tmp_path)
    assert x.dtype == np.float32 and x.shape == (5, 784) and x.flags.writeable
    np.testing.assert_array_equal(x[0, :4], [0, 0, 1, 1])  # 127/255 < 0.5 < 128/255
    np.testing.assert_array_equal(x, tiny["images"].reshape(5, -1) / 255.0 > 0.5)
    g = data.load_images("MNIST", data_dir=tmp_path, binarize=False)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, tiny["images"].reshape(5, -1) / 255.0, rtol=1e-6)
    y = data.load_labels("mnist", data_dir=tmp_path)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, tiny["labels"])


def test_repeated_loads_decode_once(tmp_path, tiny, monkeypatch):
    accept(monkeypatch, tiny)
    write(tmp_path, IMAGES, tiny[IMAGES])
    data.load_images("mnist", data_dir=tmp_path)
    before = data._decode_cached.cache_info()
    a = data.load_images("mnist", data_dir=tmp_path)
    a[:] = 0.5  # callers own their copy; the cache is not touched
    b = data.load_images("mnist", data_dir=tmp_path)
    after = data._decode_cached.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 2
    assert set(np.unique(b)) <= {0.0, 1.0}


def test_checksum_mismatch(tmp_path, tiny):
    path = write(tmp_path / "mnist", IMAGES, tiny[IMAGES])  # the real checksum table applies
    with pytest.raises(DataError) as excinfo:
        data.load_images("mnist", data_dir=tmp_path, download=False)
    one_line_error(excinfo, str(path), "SHA-256 mismatch", "mnist/" + IMAGES)


def test_checksum_mismatch_names_other_dataset(tmp_path, tiny, monkeypatch):
    accept(monkeypatch, tiny, "fashion-mnist")
    write(tmp_path / "mnist", IMAGES, tiny[IMAGES])  # nested under the wrong name: refused
    with pytest.raises(DataError) as excinfo:
        data.load_images("mnist", data_dir=tmp_path)
    one_line_error(excinfo, "SHA-256 mismatch", "it is fashion-mnist/" + IMAGES)


def test_flat_folder_of_other_dataset_is_skipped(tmp_path, tiny, monkeypatch):
    accept(monkeypatch, tiny, "fashion-mnist")
    write(tmp_path / "flat", IMAGES, tiny[IMAGES])
    x = data.load_images("fashion-mnist", data_dir=tmp_path / "flat")
    assert x.shape == (5, 784)
    with pytest.raises(DataError) as excinfo:  # MNIST looks past it and finds nothing
        data.load_images("mnist", data_dir=tmp_path / "flat", download=False)
    one_line_error(excinfo, "mnist/" + IMAGES, "not found")


def test_wrong_image_and_label_dims(tmp_path, monkeypatch):
    images, labels = idx_bytes(np.zeros((4, 10), np.uint8)), idx_bytes(np.zeros((4, 2), np.uint8))
    monkeypatch.setitem(data.CHECKSUMS, "mnist/" + IMAGES, sha(images))
    monkeypatch.setitem(data.CHECKSUMS, "mnist/" + LABELS, sha(labels))
    write(tmp_path, IMAGES, images)
    write(tmp_path, LABELS, labels)
    with pytest.raises(DataError) as excinfo:
        data.load_images("mnist", data_dir=tmp_path)
    one_line_error(excinfo, IMAGES, "(n, 28, 28)", "(4, 10)")
    with pytest.raises(DataError) as excinfo:
        data.load_labels("mnist", data_dir=tmp_path)
    one_line_error(excinfo, LABELS, "(4, 2)")


def test_corrupt_dataset_file_is_reported_not_skipped(tmp_path, tiny, monkeypatch):
    accept(monkeypatch, tiny)
    bad = write(tmp_path / "first", IMAGES, tiny[IMAGES][:-1])
    write(tmp_path / "second", IMAGES, tiny[IMAGES])
    monkeypatch.setenv("VPF_DATA_DIR", str(tmp_path / "second"))
    with pytest.raises(DataError) as excinfo:
        data.load_images("mnist", data_dir=tmp_path / "first")
    one_line_error(excinfo, str(bad), "truncated")


def test_missing_files_offline_message(tmp_path):
    with pytest.raises(DataError) as excinfo:
        data.load_labels("fashion-mnist", "test", data_dir=tmp_path, download=False)
    one_line_error(excinfo, "fashion-mnist/" + T_LABELS, "not found", str(tmp_path),
                   "downloading is off", "VPF_DATA_DIR=DIR", "--data-dir DIR",
                   "dataset-fashion-mnist", IMAGES, LABELS, T_IMAGES, T_LABELS)


def test_unknown_names(tmp_path):
    with pytest.raises(DataError) as excinfo:
        data.load_images("mnsit", data_dir=tmp_path)
    one_line_error(excinfo, "unknown data set 'mnsit'", "mnist, fashion-mnist")
    with pytest.raises(DataError) as excinfo:
        data.load_labels("mnist", "valid", data_dir=tmp_path)
    one_line_error(excinfo, "unknown split 'valid'")
    with pytest.raises(DataError) as excinfo:
        data.resolve_data("fashion")
    one_line_error(excinfo, "unknown data set 'fashion'")


def test_named_folders_must_exist(tmp_path, monkeypatch):
    with pytest.raises(DataError) as excinfo:
        data.load_images("mnist", data_dir=tmp_path / "typo")
    one_line_error(excinfo, "typo", "does not exist")
    monkeypatch.setenv("VPF_DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(DataError) as excinfo:
        data.load_images("mnist")
    one_line_error(excinfo, "VPF_DATA_DIR=", "gone", "not a folder")


def test_lookup_order_and_layouts(tmp_path, tiny, monkeypatch):
    accept(monkeypatch, tiny)
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", data.cache_dir()
    write(explicit, IMAGES, tiny[IMAGES], compress=False)    # flat, raw
    write(env / "mnist", IMAGES, tiny[IMAGES])               # nested, gz
    write(cache / "mnist", IMAGES, tiny[IMAGES])
    monkeypatch.setenv("VPF_DATA_DIR", str(env))

    def used(**kw):
        table = data.check_data(**kw)
        row = table[(table.dataset == "mnist") & (table.file == IMAGES)].iloc[0]
        return row.source, row.path, row.status

    assert used(data_dir=explicit) == ("data_dir", str(explicit / IMAGES), "ok")
    assert used() == ("VPF_DATA_DIR", str(env / "mnist" / (IMAGES + ".gz")), "ok")
    monkeypatch.delenv("VPF_DATA_DIR")
    assert used() == ("cache", str(cache / "mnist" / (IMAGES + ".gz")), "ok")
    monkeypatch.setattr(data, "SYSTEM_DIRS", (env,))
    (cache / "mnist" / (IMAGES + ".gz")).unlink()
    assert used() == ("system", str(env / "mnist" / (IMAGES + ".gz")), "ok")


def test_check_data_reports_missing_and_bad(tmp_path, tiny):
    write(tmp_path / "fashion-mnist", LABELS, tiny[LABELS])  # not the real file
    table = data.check_data(tmp_path)
    assert len(table) == 8 and set(table.dataset) == set(data.DATASETS)
    bad = table[table.status == "bad"]
    assert list(zip(bad.dataset, bad.file)) == [("fashion-mnist", LABELS)]
    assert "SHA-256 mismatch" in bad.detail.iloc[0]
    assert (table.status[table.status != "bad"] == "missing").all()


# ---------------------------------------------------------------------------------------------
# Downloads, against a server on localhost

@pytest.fixture
def server(tmp_path):
    """An HTTP server in a thread serving tmp_path/www; yields (root, base url, requested paths)."""
    root = tmp_path / "www"
    root.mkdir()
    requested = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/", requested
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def cache_files():
    return sorted(p.name for p in data.cache_dir().rglob("*") if p.is_file())


def test_download_success_into_cache(server, tiny, monkeypatch):
    root, url, requested = server
    accept(monkeypatch, tiny, "fashion-mnist")
    write(root / "fashion-mnist", LABELS, tiny[LABELS])
    monkeypatch.setenv("VPF_DATA_MIRRORS", closed_port_url() + " " + url + "{dataset}")
    y = data.load_labels("fashion-mnist")  # first mirror is down, the second serves it
    np.testing.assert_array_equal(y, tiny["labels"])
    assert cache_files() == [LABELS + ".gz"]  # nothing half-written left behind
    assert (data.cache_dir() / "fashion-mnist" / (LABELS + ".gz")).is_file()
    assert requested == ["/fashion-mnist/" + LABELS + ".gz"]
    data.load_labels("fashion-mnist")  # from the cache now
    assert len(requested) == 1


def test_download_function_fetches_only_missing(server, tiny, monkeypatch, tmp_path):
    root, url, requested = server
    accept(monkeypatch, tiny)
    for name in (IMAGES, LABELS, T_IMAGES):
        write(root, name, tiny[name])
    write(tmp_path / "local", T_LABELS, tiny[T_LABELS])
    paths = data.download("mnist", mirrors=url, data_dir=tmp_path / "local")
    assert sorted(requested) == sorted("/" + n + ".gz" for n in (IMAGES, LABELS, T_IMAGES))
    assert paths[3] == tmp_path / "local" / (T_LABELS + ".gz")
    assert cache_files() == sorted(n + ".gz" for n in (IMAGES, LABELS, T_IMAGES))


def test_download_refuses_checksum_mismatch(server, tiny, monkeypatch):
    root, url, requested = server
    write(root, LABELS, tiny[LABELS])  # well-formed, but not the real MNIST labels
    monkeypatch.setenv("VPF_DATA_MIRRORS", url)
    with pytest.raises(DataError) as excinfo:
        data.load_labels("mnist")
    one_line_error(excinfo, url + LABELS + ".gz", "checksum mismatch", "refused", "VPF_DATA_DIR")
    assert requested and cache_files() == []


def test_download_reports_corrupt_and_missing_files(server, tiny, monkeypatch):
    root, url, _ = server
    accept(monkeypatch, tiny)
    (root / "bad").mkdir()
    (root / "bad" / (LABELS + ".gz")).write_bytes(gzip.compress(tiny[LABELS])[:-9])
    monkeypatch.setenv("VPF_DATA_MIRRORS", f"{url}bad/,{url}empty/")
    with pytest.raises(DataError) as excinfo:
        data.load_labels("mnist")
    one_line_error(excinfo, "corrupt gzip", "empty/" + LABELS + ".gz: HTTP 404")
    assert cache_files() == []


def test_download_unreachable_fails_fast_with_advice(monkeypatch):
    down = closed_port_url()
    monkeypatch.setenv("VPF_DATA_MIRRORS", down)
    start = time.perf_counter()
    with pytest.raises(DataError) as excinfo:
        data.load_images("mnist", "test")
    assert time.perf_counter() - start < 5
    one_line_error(excinfo, "mnist/" + T_IMAGES, "not found in", "download failed",
                   down + T_IMAGES + ".gz", "refused", "Offline?", "VPF_DATA_DIR=DIR",
                   "--data-dir DIR", IMAGES + "[.gz]", T_LABELS + "[.gz]")
    assert cache_files() == []


def test_download_real_file_from_local_mirror(server, shared_data_dir, monkeypatch):
    root, url, _ = server
    name = T_LABELS + ".gz"
    (root / name).write_bytes((shared_data_dir / "mnist" / name).read_bytes())
    monkeypatch.setenv("VPF_DATA_MIRRORS", url)
    y = data.load_labels("mnist", "test")  # verified against the real checksum table
    assert y.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                   974, 1009])


# ---------------------------------------------------------------------------------------------
# The user's own data

def test_user_npy_and_npz(tmp_path):
    x = (np.arange(12).reshape(3, 4) % 2).astype(np.uint8)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x.astype(bool))
    np.savez(tmp_path / "one.npz", whatever=x.astype(np.float64))
    np.savez(tmp_path / "named.npz", labels=np.arange(3), x=x)
    np.savez(tmp_path / "data.npz", data=x, y=np.arange(3))
    for name in ("a.npy", "b.npy", "one.npz", "named.npz", "data.npz"):
        out = data.load_user_data(tmp_path / name)
        assert out.dtype == np.float32 and out.shape == (3, 4), name
        np.testing.assert_array_equal(out, x)
    np.savez(tmp_path / "pick.npz", a=x, b=1 - x)
    np.testing.assert_array_equal(data.load_user_data(tmp_path / "pick.npz", key="b"), 1 - x)
    with pytest.raises(DataError) as excinfo:
        data.load_user_data(tmp_path / "a.npy", key="x")
    one_line_error(excinfo, "a.npy", "only applies to .npz")


def test_user_greyscale_options(tmp_path):
    g = np.array([[0.0, 0.5, 0.51, 1.0]])
    np.save(tmp_path / "g.npy", g)
    np.testing.assert_array_equal(data.load_user_data(tmp_path / "g.npy", binarize=True),
                                  [[0, 0, 1, 1]])
    np.testing.assert_allclose(data.load_user_data(tmp_path / "g.npy", binarize=False), g)
    with pytest.raises(DataError) as excinfo:
        data.load_user_data(tmp_path / "g.npy")
    one_line_error(excinfo, "g.npy", "not binary", "value 0.5 at row 0, column 1")


@pytest.mark.parametrize("array, binarize, fragments", [
    (np.zeros(5), None, ["2-D matrix", "(5,)"]),
    (np.zeros((2, 28, 28)), None, ["2-D matrix", "(2, 28, 28)", "reshape"]),
    (np.zeros((0, 4)), None, ["empty matrix"]),
    (np.array([[0, 1], [np.nan, 0]]), False, ["NaN", "row 1, column 0"]),
    (np.array([[0, np.inf]]), True, ["infinite"]),
    (np.array([[0, 2]]), None, ["not binary", "value 2"]),
    (np.array([[0, 255]], np.uint8), True, ["outside [0, 1]", "pixels / 255"]),
    (np.array([[-0.1, 1]]), False, ["outside [0, 1]"]),
    (np.array([["a", "b"]]), None, ["not numeric"]),
    (np.array([[1 + 1j]]), None, ["not numeric"]),
])
def test_user_data_errors(tmp_path, array, binarize, fragments):
    path = tmp_path / "x.npy"
    np.save(path, array)
    with pytest.raises(DataError) as excinfo:
        data.load_user_data(path, binarize=binarize)
    one_line_error(excinfo, str(path), *fragments)


def test_user_data_refuses_pickles_and_junk(tmp_path):
    obj = np.empty((2, 2), dtype=object)
    obj[:] = 1
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    np.savez(tmp_path / "obj.npz", x=obj)
    (tmp_path / "pickle.npy").write_bytes(b"\x80\x04K\x01.")  # pickle of the integer 1
    (tmp_path / "text.npy").write_text("0,1\n1,0\n")
    np.savez(tmp_path / "many.npz", a=np.zeros((2, 2)), b=np.ones((2, 2)))
    (tmp_path / "short.npz").write_bytes(b"PK\x03\x04 cut")
    cases = [("obj.npy", "object array, refused"), ("obj.npz", "object array, refused"),
             ("pickle.npy", "Python pickle, refused"), ("text.npy", "not a .npy/.npz file"),
             ("short.npz", "not a readable .npy/.npz file"),
             ("many.npz", "holds 2 arrays (a, b)"), ("missing.npy", "no such file")]
    for name, fragment in cases:
        with pytest.raises(DataError) as excinfo:
            data.load_user_data(tmp_path / name)
        one_line_error(excinfo, name, fragment)
    with pytest.raises(DataError) as excinfo:
        data.load_user_data(tmp_path / "many.npz", key="c")
    one_line_error(excinfo, "no array 'c'")
    with pytest.raises(DataError) as excinfo:
        data.load_user_data(tmp_path)
    one_line_error(excinfo, "is a folder")


# ---------------------------------------------------------------------------------------------
# split_validation and resolve_data

def test_split_validation_takes_last_rows():
    x = np.arange(20).reshape(10, 2)
    train, valid = data.split_validation(x, 3)
    np.testing.assert_array_equal(train, x[:7])
    np.testing.assert_array_equal(valid, x[7:])
    train, valid = data.split_validation(x, 0)
    assert train.shape == (10, 2) and valid.shape == (0, 2)
    for bad in (10, -1, 2.5, True):
        with pytest.raises(ConfigError) as excinfo:
            data.split_validation(x, bad)
        one_line_error(excinfo, "n_validation")


def test_resolve_data(tmp_path, tiny, monkeypatch):
    accept(monkeypatch, tiny)
    for name in (T_IMAGES, T_LABELS):
        write(tmp_path / "mnist", name, tiny[name])
    np.testing.assert_array_equal(data.resolve_data("mnist", "test", data_dir=tmp_path),
                                  data.load_images("mnist", "test", data_dir=tmp_path))
    grey = data.resolve_data("Mnist", "test", data_dir=tmp_path, binarize=False)
    assert grey.max() <= 1 and len(np.unique(grey)) > 2

    g = np.array([[0.2, 0.7]])
    np.save(tmp_path / "g.npy", g)
    with pytest.raises(DataError, match="binarize"):     # greyscale user data: refused unless asked
        data.resolve_data(str(tmp_path / "g.npy"))
    np.testing.assert_array_equal(data.resolve_data(str(tmp_path / "g.npy"), binarize=True), [[0, 1]])
    np.testing.assert_allclose(data.resolve_data(tmp_path / "g.npy", binarize=False), g)
    with pytest.raises(DataError) as excinfo:
        data.resolve_data(tmp_path / "g.npy", "test")
    one_line_error(excinfo, "g.npy", "no 'test' array")

    np.savez(tmp_path / "both.npz", train=np.ones((3, 2)), test=np.zeros((1, 2)))
    assert data.resolve_data(tmp_path / "both.npz").shape == (3, 2)
    assert data.resolve_data(tmp_path / "both.npz", "test").shape == (1, 2)

    for spec, fragment in [(str(tmp_path / "none.npz"), "no such file"),
                           (tmp_path, "is a folder"), (42, "data-set name or a file path"),
                           ("mnist", "unknown split")]:
        with pytest.raises(DataError) as excinfo:
            data.resolve_data(spec, "valid" if spec == "mnist" else "train")
        one_line_error(excinfo, fragment)


# ---------------------------------------------------------------------------------------------
# The real files

@pytest.mark.data
def test_real_mnist(shared_data_dir):
    grey = data.load_images("mnist", data_dir=shared_data_dir, binarize=False)
    assert grey.shape == (60000, 784) and grey.dtype == np.float32
    assert grey.min() == 0 and grey.max() == 1
    assert grey.mean(dtype=np.float64) == pytest.approx(0.13066, abs=5e-6)
    binary = data.load_images("mnist", data_dir=shared_data_dir)
    assert binary.dtype == np.float32
    np.testing.assert_array_equal(binary, grey > 0.5)  # and hence only 0 and 1
    y = data.load_labels("mnist", data_dir=shared_data_dir)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                   6265, 5851, 5949])
    assert data.load_images("mnist", "test", data_dir=shared_data_dir).shape == (10000, 784)
    assert data.load_labels("mnist", "test", data_dir=shared_data_dir).shape == (10000,)


@pytest.mark.data
def test_real_fashion_mnist(shared_data_dir):
    grey = data.load_images("fashion-mnist", data_dir=shared_data_dir, binarize=False)
    assert grey.shape == (60000, 784)
    assert grey.mean(dtype=np.float64) == pytest.approx(0.28604, abs=5e-6)
    binary = data.load_images("fashion-mnist", "test", data_dir=shared_data_dir)
    assert binary.shape == (10000, 784)
    assert np.count_nonzero(binary) + np.count_nonzero(binary == 0) == binary.size
    assert 0 < binary.mean() < 1
    for split, n in (("train", 6000), ("test", 1000)):
        y = data.load_labels("fashion-mnist", split, data_dir=shared_data_dir)
        np.testing.assert_array_equal(np.bincount(y), [n] * 10)


@pytest.mark.data
def test_real_check_data_and_flat_folder(shared_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VPF_DATA_DIR", str(shared_data_dir))
    table = data.check_data()
    assert (table.status == "ok").all() and (table.source == "VPF_DATA_DIR").all()
    flat = tmp_path / "flat"  # a flat folder of Fashion-MNIST, like the Debian package
    flat.mkdir()
    (flat / (T_LABELS + ".gz")).symlink_to(shared_data_dir / "fashion-mnist" / (T_LABELS + ".gz"))
    monkeypatch.delenv("VPF_DATA_DIR")
    table = data.check_data(flat).set_index(["dataset", "file"])
    assert table.loc[("fashion-mnist", T_LABELS), "status"] == "ok"
    assert table.loc[("mnist", T_LABELS), "status"] == "missing"  # skipped, not "bad"
