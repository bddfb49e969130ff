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
