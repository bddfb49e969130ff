"""The device back-ends as objects (``vpf_spiking.spiking.devices``), checked without compiling anything."""

import json
import sys
import types

import pytest

from vpf_spiking.errors import ConfigError
from vpf_spiking.spiking import devices


def test_table_names_every_backend_and_get_device_returns_fresh_objects():
    assert devices.DEVICES == ("runtime", "cpp_standalone", "cuda_standalone")
    kinds = {name: type(devices.get_device(name)) for name in devices.DEVICES}
    assert kinds == {"runtime": devices.RuntimeDevice, "cpp_standalone": devices.CppStandaloneDevice,
                     "cuda_standalone": devices.CudaStandaloneDevice}
    assert all(issubclass(k, devices.Device) and k.name == n for n, k in kinds.items())
    # one object per simulation: compile state is not shared
    assert devices.get_device("cpp_standalone") is not devices.get_device("cpp_standalone")


@pytest.mark.parametrize("name", ["gpu", "standalone", "", "Runtime"])
def test_unknown_device_is_one_line_config_error(name):
    with pytest.raises(ConfigError) as err:
        devices.get_device(name)
    msg = str(err.value)
    assert "unknown device" in msg and "cuda_standalone" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="unknown device"):
        devices.check_device(name)


def test_project_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("VPF_SPIKING_CACHE", str(tmp_path / "cache"))
    assert devices.get_device("runtime").project_dir("abc") is None
    assert devices.get_device("cpp_standalone").project_dir("abc") == tmp_path / "cache" / "cpp_standalone" / "abc"
    assert devices.get_device("cuda_standalone").project_dir("abc", tmp_path / "p") == tmp_path / "p"


def test_progress_reports_per_backend():
    assert devices.get_device("runtime").report(False) is None
    assert callable(devices.get_device("runtime").report(True))
    assert devices.get_device("cpp_standalone").report(True) == "text"
    assert devices.get_device("cpp_standalone").report(False) is None


def test_read_back_keeps_the_last_run_of_a_runtime_recording():
    import numpy as np

    rec = np.arange(10.0)
    assert list(devices.get_device("runtime").read_back(rec, last=3)) == [7.0, 8.0, 9.0]
    # a standalone project records one run only
    assert list(devices.get_device("cpp_standalone").read_back(rec, last=3)) == list(rec)


def test_makefile_patch_rewrites_old_cxx_standards(tmp_path):
    (tmp_path / "makefile").write_text("NVCCFLAGS = -O3 -std=c++11 -arch=sm_90\nCXXFLAGS = -std=c++14\n")
    assert devices.patch_makefile(tmp_path) is True
    text = (tmp_path / "makefile").read_text()
    assert "-std=c++11" not in text and "-std=c++14" not in text and text.count("-std=c++17") == 2
    assert devices.patch_makefile(tmp_path) is False          # already patched
    assert devices.patch_makefile(tmp_path / "missing") is False


@pytest.mark.parametrize("layout", ["cu13", "curand"])
def test_curand_lookup_finds_the_wheel_layout(tmp_path, layout):
    base = tmp_path / "nvidia" / layout
    (base / "include").mkdir(parents=True)
    (base / "include" / "curand.h").write_text("")
    (base / "lib").mkdir()
    inc, lib = devices.curand_paths([tmp_path / "nvidia"])
    assert inc == str(base / "include") and lib == str(base / "lib")


def test_curand_lookup_without_the_wheel(tmp_path):
    assert devices.curand_paths([tmp_path]) == (None, None)
    (tmp_path / "cu13" / "include").mkdir(parents=True)
    (tmp_path / "cu13" / "include" / "curand.h").write_text("")
    assert devices.curand_paths([tmp_path]) == (str(tmp_path / "cu13" / "include"), None)   # no lib folder


def test_cuda_is_refused_in_one_line_without_brian2cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "brian2cuda", None)       # makes `import brian2cuda` fail
    dev = devices.get_device("cuda_standalone")                # the name itself is fine
    with pytest.raises(ConfigError) as err:
        dev.check_available()
    assert "needs brian2cuda" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="needs brian2cuda"):
        dev.prepare()                                          # refused before Brian2 is touched


def test_cuda_without_gpu_or_nvcc_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "brian2cuda", types.ModuleType("brian2cuda"))
    monkeypatch.delenv("VPF_CUDA_NO_GPU", raising=False)
    monkeypatch.delenv("VPF_CUDA_COMPUTE_CAPABILITY", raising=False)
    monkeypatch.setattr(devices, "_has_nvcc", lambda: True)
    monkeypatch.setattr(devices, "_has_gpu", lambda: False)
    with pytest.raises(ConfigError, match="needs an NVIDIA GPU"):
        devices.get_device("cuda_standalone").check_available()
    monkeypatch.setenv("VPF_CUDA_NO_GPU", "1")                 # building without a GPU is allowed
    devices.get_device("cuda_standalone").check_available()
    monkeypatch.setattr(devices, "_has_nvcc", lambda: False)
    with pytest.raises(ConfigError, match="nvcc"):
        devices.get_device("cuda_standalone").check_available()


def test_runtime_and_cpp_are_always_available():
    devices.get_device("runtime").check_available()
    devices.get_device("cpp_standalone").check_available()


def test_stdp_protocol_accepts_every_device_name():
    from vpf_spiking.spiking.stdp import PairingProtocol

    for name in devices.DEVICES:
        assert PairingProtocol(device=name).validated().device == name
    with pytest.raises(ConfigError, match="unknown device"):
        PairingProtocol(device="gpu").validated()


def test_vpf_stdp_on_cuda_without_brian2cuda_is_one_line_error(monkeypatch, capsys, tmp_path):
    from vpf_spiking.cli import main

    monkeypatch.setitem(sys.modules, "brian2cuda", None)
    rc = main(["stdp", "--device", "cuda_standalone", "--synapses", "2", "--no-progress",
               "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "needs brian2cuda" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


# ---------------------------------------------------------------------------- first-run compile notice


def test_compile_estimate_is_recorded_per_device(tmp_path, monkeypatch):
    monkeypatch.setenv("VPF_SPIKING_CACHE", str(tmp_path))
    assert devices.compile_estimate("runtime") == devices.DEFAULT_COMPILE_S["runtime"]
    devices.record_compile_time("runtime", 12.34)
    assert devices.compile_estimate("runtime") == 12.3
    assert devices.compile_estimate("cpp_standalone") == devices.DEFAULT_COMPILE_S["cpp_standalone"]
    (tmp_path / devices.COMPILE_TIMES_FILE).write_text("{broken")
    assert devices.compile_estimate("runtime") == devices.DEFAULT_COMPILE_S["runtime"]


def test_compile_notice_names_the_estimate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VPF_SPIKING_CACHE", str(tmp_path))
    devices.record_compile_time("cpp_standalone", 41)
    devices.announce_compile("cpp_standalone")
    assert "compiling Brian2 code once (about 41 s)" in capsys.readouterr().err


def test_new_standalone_project_is_announced_and_timed(tmp_path, monkeypatch, capsys):
    """build() on a folder without a binary announces and records; with one it says nothing."""
    import brian2

    monkeypatch.setenv("VPF_SPIKING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(brian2.device, "build", lambda **kw: None, raising=False)
    project = tmp_path / "p"

    def compile_source(directory, compiler, debug, clean):
        (project / "main").write_text("")

    monkeypatch.setattr(brian2.device, "compile_source", compile_source, raising=False)
    dev = devices.CppStandaloneDevice()
    dev.build(project)
    assert "compiling Brian2 code once" in capsys.readouterr().err
    assert "cpp_standalone" in json.loads((tmp_path / "cache" / devices.COMPILE_TIMES_FILE).read_text())
    dev.build(project)
    assert "compiling" not in capsys.readouterr().err


# ---------------------------------------------------------------------------- one default policy
def test_default_device_is_cpp_standalone_with_a_compiler_else_runtime(monkeypatch):
    monkeypatch.delenv("VPF_DEVICE", raising=False)
    monkeypatch.setattr(devices, "_cxx_compiler", lambda: "/usr/bin/g++")
    assert devices.default_device() == "cpp_standalone"
    monkeypatch.setattr(devices, "_cxx_compiler", lambda: None)
    assert devices.default_device() == "runtime"
    monkeypatch.setenv("VPF_DEVICE", "cuda_standalone")
    assert devices.default_device() == "cuda_standalone"
    monkeypatch.setenv("VPF_DEVICE", "gpu")
    with pytest.raises(ConfigError, match=r"\$VPF_DEVICE='gpu' names no device") as e:
        devices.default_device()
    assert "\n" not in str(e.value)


def test_every_entry_point_follows_the_default_policy(monkeypatch, tmp_path):
    """vpf train --engine spiking, vpf stdp, vpf simulate, both protocol kinds and the library agree."""
    import numpy as np

    from vpf_spiking.cli.main import build_parser
    from vpf_spiking.cli.train import spiking_config_from_args
    from vpf_spiking.protocols.spiking_train import parse_spiking_train
    from vpf_spiking.spiking import SpikingTrainer
    from vpf_spiking.spiking.stdp import PairingProtocol

    for name in ("runtime", "cpp_standalone"):
        monkeypatch.setenv("VPF_DEVICE", name)
        assert PairingProtocol().validated().device == name
        assert SpikingTrainer().device == name
        parser = build_parser()
        for cmd in (["stdp", "--out", "x.csv"], ["simulate", "m.npz"], ["train", "rbm-toy", "--engine", "spiking"]):
            args = parser.parse_args(cmd)
            assert args.device is None, cmd   # None: resolved by default_device where it is used
        cfg = spiking_config_from_args(parser.parse_args(["train", "rbm-toy", "--engine", "spiking"]))
        assert "device" not in cfg["spiking"]
        np.save(tmp_path / "d.npy", np.zeros((4, 9), dtype=np.float32))
        cfg["data"]["dataset"] = str(tmp_path / "d.npy")
        assert SpikingTrainer(**parse_spiking_train(cfg)["trainer"]).device == name


def test_a_compiled_project_is_used_by_one_process_at_a_time(tmp_path, capsys):
    """A second process with the same standalone project waits for the first, and says so."""
    import subprocess
    import time

    project = tmp_path / "proj"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from vpf_spiking.spiking.devices import CppStandaloneDevice as D; "
        f"d = D(); d._hold_project({str(project)!r}); print('held', flush=True); time.sleep(3)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    d = devices.CppStandaloneDevice()
    t0 = time.perf_counter()
    d._hold_project(project)
    waited = time.perf_counter() - t0
    holder.wait(timeout=30)
    assert waited > 1.0, waited
    assert "waiting for another process that is using the compiled project" in capsys.readouterr().err
    d._let_go()
    d2 = devices.CppStandaloneDevice()
    t0 = time.perf_counter()
    d2._hold_project(project)            # free again: no wait
    assert time.perf_counter() - t0 < 1.0
    d2._let_go()
