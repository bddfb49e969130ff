"""Shared fixtures: where the real data sets live, and the opt-in switch for slow tests."""

from pathlib import Path

import os

import numpy as np
import pytest

# Simulations that name no device use $VPF_DEVICE (vpf_spiking.spiking.devices.default_device).
# The suite runs them on Brian2's runtime device: its Cython cache compiles once for every small
# network of the suite, where cpp_standalone would compile one project per network structure.
# Tests that need a device name it; test_devices checks the policy without this variable.
os.environ.setdefault("VPF_DEVICE", "runtime")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


# ---------------------------------------------------------------------------- Brian2 devices
# As Brian2's own suite marks tests standalone-compatible and runs them per device, a test that
# takes a `device` argument runs on each device its `devices` marker names (runtime alone when it
# has none).  cuda_standalone runs where brian2cuda, nvcc and a GPU are present, so the same
# exactness tests check the GPU back-end whenever the suite runs on a GPU machine.
def _device_missing(name):
    """Why ``name`` cannot run here, or None."""
    from vpf_spiking.errors import ConfigError
    from vpf_spiking.spiking.devices import get_device

    try:
        get_device(name).check_available()
    except ConfigError as exc:
        return str(exc)
    return None


def pytest_generate_tests(metafunc):
    if "device" not in metafunc.fixturenames:
        return
    if any("device" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test chose its devices itself
    marker = metafunc.definition.get_closest_marker("devices")
    names = marker.args if marker else ("runtime",)
    params = []
    for name in names:
        why = _device_missing(name)
        marks = [pytest.mark.skip(reason=f"device {name}: {why}")] if why else []
        params.append(pytest.param(name, marks=marks, id=name))
    metafunc.parametrize("device", params)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data_dir():
    """../shared/data beside the checkout (MNIST and Fashion-MNIST); skip when it is absent."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
