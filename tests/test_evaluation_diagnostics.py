import numpy as np
import pandas as pd
import pytest

from vpf_spiking import plotting
from vpf_spiking.errors import DataError, ModelError
from vpf_spiking.evaluation.diagnostics import (DiagnosticsCallback, hidden_activation, mean_squared_weight,
                                                weight_sparsity, write_table)
from vpf_spiking.model import BoltzmannMachine


def test_weight_sparsity_extremes(rng):
    assert weight_sparsity(np.full((4, 5), -0.3)) == pytest.approx(1.0)
    one = np.zeros((10, 10))
    one[3, 4] = 2.0
    assert weight_sparsity(one) == pytest.approx(1 / 100)
    assert weight_sparsity(rng.standard_normal((300, 300))) == pytest.approx(2 / np.pi, abs=0.01)
    assert mean_squared_weight(np.array([[1.0, -3.0]])) == pytest.approx(5.0)


def test_hidden_activation_and_callback(rng, tmp_path):
    m = BoltzmannMachine([16, 6], weight_std=0.5, seed=1)
    m.b[1][:] = [-20, 20, 0, 0, 0, 0]
    x = (rng.random((50, 16)) < 0.5).astype(np.float32)
    act = hidden_activation(m, x)
    assert act[0] < 1e-3 and act[1] > 1 - 1e-3
    with pytest.raises(ModelError, match="hidden layer"):
        hidden_activation(m, x, layer=2)
    cb = DiagnosticsCallback(x)
    for epoch in (1, 2):
        m.W[1] *= 2
        cb(epoch, m, {"objective": 10.0 / epoch, "note": [1, 2]})
    df = cb.frame()
    assert list(df.epoch) == [1, 2] and list(df.objective) == [10.0, 5.0]
    assert df.mean_sq_W1[1] == pytest.approx(4 * df.mean_sq_W1[0], rel=1e-5)
    assert df.sparsity_W1[1] == pytest.approx(df.sparsity_W1[0], rel=1e-5)  # scale-free
    assert df.dead_units[0] == 1 and df.saturated_units[0] == 1
    csv, md = write_table(df, tmp_path / "sub" / "diag")
    pd.testing.assert_frame_equal(pd.read_csv(csv), df, check_dtype=False)
    assert md.read_text().startswith("|")


def test_plots_are_written(rng, tmp_path):
    grid = plotting.image_grid(rng.random((7, 12)), shape=(3, 4), ncols=3, pad=1)
    assert grid.shape == (3 * 4 + 1, 3 * 5 + 1)
    with pytest.raises(DataError, match="tiles"):
        plotting.image_grid(rng.random((7, 11)), shape=(3, 4))
    paths = [plotting.save_filters(rng.standard_normal((784, 20)), tmp_path / "f.png", title="filters"),
             plotting.save_image_grid(rng.random((12, 784)), tmp_path / "s.png"),
             plotting.plot_curves(pd.DataFrame({"epoch": [1, 2, 3], "a": [3, 2, 1], "g": ["x", "x", "y"]}),
                                  "epoch", ["a"], tmp_path / "c.png", groupby="g"),
             plotting.plot_histogram(rng.random(100), tmp_path / "h.png")]
    for p in paths:
        assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"


def test_figures_leave_the_pyplot_backend_alone(tmp_path):
    """Writing a PNG must not switch pyplot to Agg: that would silence a notebook's inline figures."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")
        import numpy as np
        from vpf_spiking.plotting import save_filters, plot_histogram
        from vpf_spiking import stdp
        save_filters(np.random.default_rng(0).normal(size=(784, 4)), r"{tmp_path}/f.png")
        plot_histogram(np.random.default_rng(0).random(50), r"{tmp_path}/h.png")
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**__import__("os").environ, "MPLBACKEND": ""})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "h.png").stat().st_size > 0
