"""Batch trainers: the fast kernels against the reference math, optimisers, checkpoints, resume, errors."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from vpf_spiking.checkpoint import load_checkpoint
from vpf_spiking.errors import ConfigError, DataError, TrainingDiverged
from vpf_spiking.model import BoltzmannMachine
from vpf_spiking.objective import gradient
from vpf_spiking.trainers.optim import SGD, Adam, make_optimizer
from vpf_spiking.sampling import bottom_up
from vpf_spiking.model import pixel_log_odds
from vpf_spiking.trainers import CDTrainer, VPFTrainer, check_training_data, flow_gradient, make_trainer


def toy_data(n=300, d=12, seed=0):
    """Binary data with structure (two prototypes plus noise), so training has something to learn."""
    rng = np.random.default_rng(seed)
    protos = rng.random((2, d)) < 0.5
    x = protos[rng.integers(0, 2, n)]
    flip = rng.random((n, d)) < 0.1
    return (x ^ flip).astype(np.float32)


def params_equal(a, b):
    pa, pb = a.parameters(), b.parameters()
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


# ---------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("sizes,intra,T", [
    ([7, 5], False, 1.0), ([7, 5], False, 1.4), ([6, 5, 4], [False, True, False], 1.0),
    ([8], True, 0.8), ([5, 4, 3, 2], [True, False, True, True], 1.0)])
def test_fast_flow_gradient_equals_reference(sizes, intra, T):
    rng = np.random.default_rng(1)
    m = BoltzmannMachine(sizes, intra=intra, weight_std=0.5, seed=2, dtype=np.float64, temperature=T)
    for b in m.b:
        b[:] = rng.normal(size=b.shape)
    state = [(rng.random((9, n)) < 0.5).astype(np.float64) for n in sizes]
    ref, K_ref = gradient(m, state, return_objective=True)
    fast, K = flow_gradient(m, state)
    assert K == pytest.approx(K_ref, rel=1e-12)
    assert fast.keys() == ref.keys()
    for k in ref:
        np.testing.assert_allclose(fast[k], ref[k], rtol=1e-12, atol=1e-14, err_msg=k)
    for k in fast:
        if k.startswith("U"):
            assert np.array_equal(fast[k], fast[k].T) and not np.any(np.diag(fast[k]))


def test_fast_flow_gradient_float32_close_to_float64():
    m = BoltzmannMachine([30, 20], weight_std=0.3, seed=3)
    rng = np.random.default_rng(0)
    state = [(rng.random((50, n)) < 0.4).astype(np.float32) for n in m.sizes]
    g32, K32 = flow_gradient(m, state)
    g64, K64 = flow_gradient(m.copy(np.float64), state)
    assert g32["W1"].dtype == np.float32
    assert K32 == pytest.approx(K64, rel=1e-5)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-4, atol=1e-6)


def test_rbm_e_step_is_bottom_up_sample():
    m = BoltzmannMachine([40, 30], weight_std=0.3, seed=4, temperature=1.3)
    x = toy_data(4500, 40)  # more than one E-step block
    ours = VPFTrainer(1).e_step(m, x, np.random.default_rng(7))
    ref, probs = bottom_up(m, x, np.random.default_rng(7))
    assert np.array_equal(ours[1], ref[1])
    assert ours[1].dtype == np.float32
    # and it is a sample of the right distribution
    assert abs(ours[1].mean() - probs[1].mean()) < 0.01


def test_dbm_e_step_uses_bottom_up_with_sweeps():
    m = BoltzmannMachine([12, 8, 6], intra=[False, True, False], weight_std=0.3, seed=5)
    x = toy_data(50, 12)
    ours = VPFTrainer(1, e_step_sweeps=2).e_step(m, x, np.random.default_rng(3))
    ref, _ = bottom_up(m, x, np.random.default_rng(3), sweeps=2)
    for a, b in zip(ours, ref):
        assert np.array_equal(a, b)


def test_vpf_step_descends_flow():
    m = BoltzmannMachine([12, 6], seed=0)
    x = toy_data(100, 12)
    tr = VPFTrainer(1, learning_rate=0.5, optimizer="sgd")
    state = tr.e_step(m, x, np.random.default_rng(0))
    Ks = [tr.step(m, state) for _ in range(40)]  # each K is measured before that step's update
    assert np.all(np.diff(Ks) < 0)
    assert Ks[-1] < 0.86 * Ks[0]


def exact_rbm_nll_gradient(m, v):
    """dNLL/dtheta of a tiny RBM by enumerating every visible state (float64)."""
    W, b, c = (a.astype(np.float64) for a in (m.W[1], m.b[0], m.b[1]))
    allv = np.array(list(itertools.product([0, 1], repeat=m.sizes[0])), dtype=np.float64)
    free = allv @ b + np.logaddexp(0, allv @ W + c).sum(axis=1)  # -F(v)
    p = np.exp(free - free.max())
    p /= p.sum()
    ph_all = 1 / (1 + np.exp(-(allv @ W + c)))
    ph = 1 / (1 + np.exp(-(v @ W + c)))
    return {"W1": (allv * p[:, None]).T @ ph_all - v.T @ ph / len(v),
            "b0": p @ allv - v.mean(0), "b1": p @ ph_all - ph.mean(0)}


@pytest.mark.parametrize("persistent", [False, True])
def test_cd_gradient_approaches_exact_nll_gradient(persistent):
    """With many Gibbs steps and a big batch, the CD/PCD update is the exact NLL gradient (plus noise)."""
    m = BoltzmannMachine([6, 4], weight_std=0.5, seed=11, dtype=np.float64)
    m.b[0][:] = [0.3, -0.4, 0.2, 0.0, -0.6, 0.5]
    v = toy_data(20000, 6, seed=3).astype(np.float64)
    lr = 1e-3
    tr = CDTrainer(k=40, persistent=persistent, epochs=1, batch_size=len(v), optimizer="sgd", learning_rate=lr)
    before = {k: a.copy() for k, a in m.parameters().items()}
    exact = exact_rbm_nll_gradient(m, v)
    tr.step(m, v, np.random.default_rng(0))
    for k in exact:
        est = (before[k] - m.parameters()[k]) / lr
        assert np.max(np.abs(est - exact[k])) < 0.02, k
        assert np.max(np.abs(exact[k])) > 0.05  # the check is not trivially satisfied by zeros


# ---------------------------------------------------------------------------- optimisers
def test_adam_matches_textbook_and_decays_only_weights():
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(4, 3)), "b0": rng.normal(size=4)}
    ref = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    s = {k: np.zeros_like(v) for k, v in params.items()}
    opt = Adam(0.01, weight_decay=0.1)
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    for t in range(1, 6):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        for k in ref:
            g = grads[k] + (wd * ref[k] if k == "W1" else 0)
            m[k] = b1 * m[k] + (1 - b1) * g
            s[k] = b2 * s[k] + (1 - b2) * g * g
            ref[k] = ref[k] - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m[k] / (np.sqrt(s[k]) + eps * np.sqrt(1 - b2 ** t))
        opt.step(params, {k: g.copy() for k, g in grads.items()})
        for k in ref:
            np.testing.assert_allclose(params[k], ref[k], rtol=1e-12, atol=1e-14)


def test_sgd_momentum_and_weight_decay():
    rng = np.random.default_rng(1)
    params = {"U1": rng.normal(size=(3, 3)), "W1": rng.normal(size=(2, 3)), "b1": rng.normal(size=3)}
    ref = {k: v.copy() for k, v in params.items()}
    vel = {k: np.zeros_like(v) for k, v in params.items()}
    opt = SGD(0.1, momentum=0.5, weight_decay=0.2)
    for _ in range(4):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        for k in ref:
            g = grads[k] + (0.2 * ref[k] if k[0] in "WU" else 0)
            vel[k] = 0.5 * vel[k] + g
            ref[k] = ref[k] - 0.1 * vel[k]
        opt.step(params, {k: g.copy() for k, g in grads.items()})
    for k in ref:
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-12)


def test_optimizer_state_round_trip_is_exact():
    rng = np.random.default_rng(2)
    p1 = {"W1": rng.normal(size=(5, 4)).astype(np.float32)}
    p2 = {"W1": p1["W1"].copy()}
    gs = [{"W1": rng.normal(size=(5, 4)).astype(np.float32)} for _ in range(6)]
    a = Adam(0.01)
    for g in gs[:3]:
        a.step(p1, {"W1": g["W1"].copy()})
    b = Adam(0.01)
    for g in gs[:3]:
        b.step(p2, {"W1": g["W1"].copy()})
    c = Adam(0.01)
    c.load_state_arrays(b.state_arrays())
    for g in gs[3:]:
        a.step(p1, {"W1": g["W1"].copy()})
        c.step(p2, {"W1": g["W1"].copy()})
    assert np.array_equal(p1["W1"], p2["W1"])


def test_optimizer_errors():
    with pytest.raises(ConfigError, match="unknown optimizer"):
        make_optimizer("rmsprop", 0.1)
    with pytest.raises(ConfigError, match="learning_rate"):
        make_optimizer("adam", -1)
    with pytest.raises(ConfigError, match="weight_decay"):
        make_optimizer("sgd", 0.1, weight_decay=-0.1)
    with pytest.raises(ConfigError, match="momentum"):
        make_optimizer("adam", 0.1, momentum=0.9)


# ---------------------------------------------------------------------------- fit, resume, checkpoints
TRAINERS = {
    "vpf": dict(method="vpf"),
    "vpf-sgd": dict(method="vpf", optimizer="sgd", learning_rate=0.05, momentum=0.5, weight_decay=1e-3),
    "cd": dict(method="cd", k=2, learning_rate=0.01),
    "pcd": dict(method="pcd", learning_rate=0.01),
}


def _trainer(kind, **kw):
    spec = dict(TRAINERS[kind])
    return make_trainer(spec.pop("method"), batch_size=32, seed=3, progress=False, **spec, **kw)


@pytest.mark.parametrize("kind", list(TRAINERS))
def test_fit_returns_metrics_and_learns(kind):
    x = toy_data()
    m = BoltzmannMachine([12, 8], seed=1)
    df = _trainer(kind, epochs=4).fit(m, x)
    assert isinstance(df, pd.DataFrame)
    assert list(df["epoch"]) == [1, 2, 3, 4]
    assert {"objective", "seconds", "recon_error", "hidden_mean"} <= set(df.columns)
    assert np.all(np.isfinite(df["objective"]))
    assert df["objective"].iloc[-1] < df["objective"].iloc[0]
    assert m.W[1].dtype == np.float32


@pytest.mark.parametrize("kind", list(TRAINERS))
def test_resume_gives_exactly_the_uninterrupted_weights(kind, tmp_path):
    x = toy_data()
    straight = BoltzmannMachine([12, 8], seed=1)
    df_straight = _trainer(kind, epochs=3).fit(straight, x)

    ck = tmp_path / "ck.npz"
    part = BoltzmannMachine([12, 8], seed=1)
    _trainer(kind, epochs=1, checkpoint=ck).fit(part, x)
    resumed = BoltzmannMachine([12, 8], seed=99)  # different init: everything must come from the file
    df = _trainer(kind, epochs=3, checkpoint=ck).fit(resumed, x, resume=True)
    assert params_equal(resumed, straight)
    assert list(df["epoch"]) == [1, 2, 3]
    np.testing.assert_array_equal(df["objective"], df_straight["objective"])
    assert load_checkpoint(ck).epoch == 3


def test_resume_for_dbm_with_intra_layer_weights(tmp_path):
    x = toy_data(120)
    kw = dict(batch_size=40, seed=1, progress=False, e_step_sweeps=2)
    straight = BoltzmannMachine([12, 6, 4], intra=[False, True, False], seed=2)
    VPFTrainer(3, **kw).fit(straight, x)
    ck = tmp_path / "dbm.npz"
    part = BoltzmannMachine([12, 6, 4], intra=[False, True, False], seed=2)
    VPFTrainer(2, checkpoint=ck, **kw).fit(part, x)
    VPFTrainer(3, checkpoint=ck, **kw).fit(part, x, resume=True)
    assert params_equal(part, straight)
    assert np.array_equal(part.U[1], part.U[1].T)


@pytest.mark.parametrize("kind", ["vpf", "pcd"])
def test_interrupt_after_epoch_then_resume(kind, tmp_path, capsys):
    x = toy_data()
    straight = BoltzmannMachine([12, 8], seed=1)
    _trainer(kind, epochs=3).fit(straight, x)

    ck = tmp_path / "ck.npz"

    def killer(epoch, model, metrics):
        if epoch == 2:  # the kill arrives after epoch 1 was checkpointed, during epoch 2's bookkeeping
            raise KeyboardInterrupt

    m = BoltzmannMachine([12, 8], seed=1)
    with pytest.raises(KeyboardInterrupt):
        _trainer(kind, epochs=3, checkpoint=ck).fit(m, x, callback=killer)
    err = capsys.readouterr().err
    assert "resume" in err and str(ck) in err
    assert load_checkpoint(ck).epoch == 1

    fresh = BoltzmannMachine([12, 8], seed=5)
    _trainer(kind, epochs=3, checkpoint=ck).fit(fresh, x, resume=True)
    assert params_equal(fresh, straight)


def test_interrupt_mid_epoch_leaves_checkpoint_intact(tmp_path, monkeypatch):
    x = toy_data()
    straight = BoltzmannMachine([12, 8], seed=1)
    _trainer("vpf", epochs=2).fit(straight, x)

    ck = tmp_path / "ck.npz"
    tr = _trainer("vpf", epochs=2, checkpoint=ck)
    calls = {"n": 0}
    real = VPFTrainer._apply

    def flaky(self, model, ws):
        calls["n"] += 1
        if calls["n"] == 15:  # epoch 1 has 10 minibatches: this is inside epoch 2
            raise KeyboardInterrupt
        return real(self, model, ws)

    monkeypatch.setattr(VPFTrainer, "_apply", flaky)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(BoltzmannMachine([12, 8], seed=1), x)
    monkeypatch.setattr(VPFTrainer, "_apply", real)
    assert load_checkpoint(ck).epoch == 1
    assert not [p for p in tmp_path.iterdir() if p.name != "ck.npz"]  # no temporary files left behind
    m = BoltzmannMachine([12, 8], seed=1)
    _trainer("vpf", epochs=2, checkpoint=ck).fit(m, x, resume=True)
    assert params_equal(m, straight)


def test_checkpoint_is_pickle_free_and_complete(tmp_path):
    ck = tmp_path / "ck.npz"
    m = BoltzmannMachine([12, 8], seed=1)

    def add(epoch, model, metrics):
        metrics["extra_metric"] = 10.0 * epoch

    _trainer("pcd", epochs=2, checkpoint=ck).fit(m, toy_data(), callback=add)
    with np.load(ck, allow_pickle=False) as f:
        keys = set(f.files)
        meta = json.loads(str(f["meta"]))
    assert {"model.W1", "model.b0", "model.b1", "optim.t", "optim.M.W1", "optim.V.b1", "extra.chains_h"} <= keys
    assert meta["epoch"] == 2 and meta["rng"]["bit_generator"] == "PCG64"
    assert [r["extra_metric"] for r in meta["history"]] == [10.0, 20.0]
    c = load_checkpoint(ck)
    assert params_equal(c.model, m)
    assert c.extra["chains_h"].shape == (32, 8)


def test_resume_refuses_other_settings_data_or_model(tmp_path):
    ck = tmp_path / "ck.npz"
    x = toy_data()
    _trainer("vpf", epochs=1, checkpoint=ck).fit(BoltzmannMachine([12, 8], seed=1), x)
    with pytest.raises(ConfigError, match="learning_rate"):
        make_trainer("vpf", epochs=2, batch_size=32, seed=3, learning_rate=0.5, checkpoint=ck,
                     progress=False).fit(BoltzmannMachine([12, 8]), x, resume=True)
    with pytest.raises(ConfigError, match="other training data"):
        _trainer("vpf", epochs=2, checkpoint=ck).fit(BoltzmannMachine([12, 8]), x[:-1], resume=True)
    with pytest.raises(ConfigError, match="sizes"):
        _trainer("vpf", epochs=2, checkpoint=ck).fit(BoltzmannMachine([12, 9]), x, resume=True)
    with pytest.raises(ConfigError, match="checkpoint"):
        _trainer("vpf", epochs=2).fit(BoltzmannMachine([12, 8]), x, resume=True)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        _trainer("vpf", epochs=2, checkpoint=tmp_path / "junk.npz").fit(BoltzmannMachine([12, 8]), x, resume=True)


def test_resume_without_checkpoint_file_starts_fresh(tmp_path):
    x = toy_data()
    a = BoltzmannMachine([12, 8], seed=1)
    _trainer("vpf", epochs=2).fit(a, x)
    b = BoltzmannMachine([12, 8], seed=1)
    _trainer("vpf", epochs=2, checkpoint=tmp_path / "new.npz").fit(b, x, resume=True)
    assert params_equal(a, b)


def test_fully_observed_and_dbm_train():
    x = toy_data(200)
    fo = BoltzmannMachine([12], intra=True, seed=0)
    df = VPFTrainer(3, batch_size=50, learning_rate=0.02, progress=False).fit(fo, x)
    assert df["objective"].iloc[-1] < df["objective"].iloc[0]
    assert "recon_error" not in df.columns
    dbm = BoltzmannMachine([12, 6, 4], intra=[False, True, True], seed=0)
    df = VPFTrainer(3, batch_size=50, learning_rate=0.02, progress=False).fit(dbm, x)
    assert df["objective"].iloc[-1] < df["objective"].iloc[0]
    dbm.validate()


def test_progress_bar_shows_objective(capsys):
    make_trainer("vpf", epochs=1, batch_size=32, progress=True).fit(BoltzmannMachine([12, 8]), toy_data())
    err = capsys.readouterr().err
    assert "vpf epoch 1/1" in err and "K=" in err


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("x,match", [
    (np.zeros(12), "2-D"),
    (np.zeros((5, 11)), "11 columns"),
    (np.zeros((0, 12)), "no examples"),
    (np.full((5, 12), 0.5), "binary"),
    (np.where(np.eye(5, 12) > 0, np.nan, 0.0), "non-finite"),
    (np.where(np.eye(5, 12) > 0, np.inf, 1.0), "non-finite"),
    (np.array([["a"] * 12] * 3), "dtype"),
    (None, "None"),
])
def test_bad_training_data_is_refused(x, match):
    m = BoltzmannMachine([12, 8])
    with pytest.raises(DataError, match=match):
        make_trainer("vpf", epochs=1, progress=False).fit(m, x)


def test_check_training_data_accepts_bool_and_int():
    m = BoltzmannMachine([12, 8])
    x = check_training_data(m, toy_data(10).astype(bool))
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert check_training_data(m, toy_data(10).astype(np.int64)).dtype == np.float32


def test_cd_refuses_non_rbm():
    with pytest.raises(ConfigError, match="RBMs only"):
        make_trainer("cd", epochs=1, progress=False).fit(BoltzmannMachine([12, 6, 4]), toy_data())
    with pytest.raises(ConfigError, match="RBMs only"):
        make_trainer("pcd", epochs=1, progress=False).fit(BoltzmannMachine([12], intra=True), toy_data())


@pytest.mark.parametrize("kw,match", [
    (dict(method="gd"), r"training method must be one of vpf, cd, pcd, got 'gd'"),
    (dict(method="vpf", k=2), r"k applies to method cd or pcd, not vpf"),
    (dict(method="vpf", epochs=0), r"epochs must be >= 1, got 0"),
    (dict(method="vpf", epochs=2.5), r"epochs must be an integer, got 2.5"),
    (dict(method="vpf", batch_size=0), r"batch_size must be >= 1, got 0"),
    (dict(method="cd", k=0), r"k must be >= 1, got 0"),
    (dict(method="cd", e_step_sweeps=3), r"e_step_sweeps applies to method vpf, not cd"),
    (dict(method="vpf", optimizer="lbfgs"), r"optimizer must be one of adam, sgd, got 'lbfgs'"),
    (dict(method="vpf", learning_rate=0), r"learning_rate must be positive, got 0.0"),
    (dict(method="vpf", momentum=0.9), r"momentum applies to optimizer sgd only"),
    (dict(method="vpf", visible_bias_init="mean"), r"visible_bias_init must be one of marginals, zero"),
    (dict(method="pcd", bogus=1), r"CDTrainer got unknown option\(s\) \['bogus'\]"),
    (dict(method="cd", persistent=True), "choose method"),
])
def test_bad_trainer_settings(kw, match):
    kw = {"epochs": 1, **kw}
    with pytest.raises(ConfigError, match=match):
        make_trainer(kw.pop("method"), **kw)


def test_divergence_is_reported(tmp_path):
    m = BoltzmannMachine([12, 8], seed=0)
    tr = make_trainer("vpf", epochs=5, batch_size=10, optimizer="sgd", learning_rate=1e30, progress=False,
                      checkpoint=tmp_path / "ck.npz")
    with pytest.raises(TrainingDiverged, match=r"epoch 1.*K became .*learning rate"):
        tr.fit(m, toy_data())


@pytest.mark.parametrize("kind", ["vpf", "cd", "pcd"])
def test_non_finite_parameters_are_reported(kind):
    """CD's gradient is bounded, so it cannot overflow by itself; a NaN weight must still be caught."""
    def poison(epoch, model, metrics):
        model.W[1][0, 0] = np.nan

    with pytest.raises(TrainingDiverged, match=r"epoch 2"):
        make_trainer(kind, epochs=3, batch_size=32, progress=False).fit(BoltzmannMachine([12, 8]), toy_data(),
                                                                        callback=poison)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_chunked_parallel_update_equals_whole_array_update(kind, monkeypatch):
    from vpf_spiking.trainers import threads

    rng = np.random.default_rng(4)
    p0 = {"W1": rng.normal(size=(700, 300)).astype(np.float32), "b1": rng.normal(size=300).astype(np.float32)}
    grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in p0.items()} for _ in range(3)]
    monkeypatch.setenv("VPF_THREADS", "2")
    assert threads.elementwise_threads() == 2
    results = []
    for chunk in (threads.CHUNK, 10**9):  # 4 chunks over 2 threads / one whole-array pass
        monkeypatch.setattr(threads, "CHUNK", chunk)
        p = {k: v.copy() for k, v in p0.items()}
        opt = make_optimizer(kind, 0.01, weight_decay=0.1, momentum=0.5 if kind == "sgd" else 0.0)
        for g in grads:
            opt.step(p, {k: v.copy() for k, v in g.items()})
        results.append(p)
    assert p0["W1"].size > 3 * (1 << 16)
    for k in p0:
        assert np.array_equal(results[0][k], results[1][k])
        assert not np.array_equal(results[0][k], p0[k])



def test_blas_thread_setting_is_honoured(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []

    def record(epoch, model, metrics):
        seen.extend(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")

    monkeypatch.setenv("VPF_BLAS_THREADS", "1")
    _trainer("vpf", epochs=1).fit(BoltzmannMachine([12, 8]), toy_data(), callback=record)
    assert seen and set(seen) == {1}
    monkeypatch.setenv("VPF_BLAS_THREADS", "two")
    with pytest.raises(ConfigError, match="VPF_BLAS_THREADS"):
        _trainer("vpf", epochs=1).fit(BoltzmannMachine([12, 8]), toy_data())
    monkeypatch.setenv("VPF_THREADS", "many")
    from vpf_spiking.trainers import threads

    with pytest.raises(ConfigError, match="VPF_THREADS must be a whole number, got 'many'"):
        threads.elementwise_threads()


def test_thread_policy(monkeypatch):
    from vpf_spiking.trainers import threads

    monkeypatch.delenv("VPF_BLAS_THREADS", raising=False)
    monkeypatch.delenv("VPF_THREADS", raising=False)
    monkeypatch.setattr(threads, "machine_busy", lambda: True)
    assert threads.elementwise_threads() == 1
    monkeypatch.setattr(threads, "machine_busy", lambda: False)
    assert threads.elementwise_threads() == min(threads.MAX_ELEMENTWISE, threads.cores())
    with threads.blas_threads(None), threads.blas_threads(1):
        pass
    with pytest.raises(ConfigError, match="BLAS thread limit"):
        threads.blas_threads(0)


# ---------------------------------------------------------------------------- visible bias initialisation
def test_fresh_fit_starts_visible_biases_at_the_pixel_log_odds(monkeypatch):
    x = toy_data(200)
    x[:, 3] = 0  # a constant pixel: the Laplace smoothing keeps its log-odds finite
    m = BoltzmannMachine([12, 8], seed=1, temperature=1.5)
    seen = {}
    real = VPFTrainer._run_epoch

    def first_epoch(self, model, data, rng, bar, epoch):
        seen.setdefault("b0", model.b[0].copy())
        return real(self, model, data, rng, bar, epoch)

    monkeypatch.setattr(VPFTrainer, "_run_epoch", first_epoch)
    _trainer("vpf", epochs=1).fit(m, x)
    p = (x.astype(np.float64).sum(axis=0) + 1.0) / (len(x) + 2.0)
    expected = 1.5 * np.log(p / (1 - p))
    np.testing.assert_allclose(seen["b0"], expected, rtol=1e-6, atol=1e-6)  # stored as float32
    np.testing.assert_allclose(pixel_log_odds(x, 1.5), expected, rtol=1e-12)
    assert np.all(np.isfinite(seen["b0"])) and seen["b0"][3] < -4


@pytest.mark.parametrize("kind", ["vpf", "cd"])
def test_visible_bias_init_zero_and_user_biases_are_left_alone(kind):
    x = toy_data(100)
    tr = _trainer(kind, epochs=1, visible_bias_init="zero")
    m = BoltzmannMachine([12, 8], seed=1)
    assert not tr.init_visible_biases(m, x) and not np.any(m.b[0])
    assert tr.config()["visible_bias_init"] == "zero"
    user = BoltzmannMachine([12, 8], seed=1)
    user.b[0][:] = 0.25
    tr = _trainer(kind, epochs=1)
    assert tr.config()["visible_bias_init"] == "marginals"
    assert not tr.init_visible_biases(user, x)
    np.testing.assert_array_equal(user.b[0], 0.25)
    fresh = BoltzmannMachine([12, 8], seed=1)
    assert tr.init_visible_biases(fresh, x)
    np.testing.assert_allclose(fresh.b[0], pixel_log_odds(x), rtol=1e-6)


def test_resumed_fit_does_not_reset_visible_biases(tmp_path, monkeypatch):
    x = toy_data()
    ck = tmp_path / "ck.npz"
    _trainer("vpf", epochs=1, checkpoint=ck).fit(BoltzmannMachine([12, 8], seed=1), x)
    calls = []
    real = VPFTrainer.init_visible_biases

    def recording(self, model, data):
        calls.append(1)
        return real(self, model, data)

    monkeypatch.setattr(VPFTrainer, "init_visible_biases", recording)
    zeroed = BoltzmannMachine([12, 8], seed=1)  # b0 = 0: a fresh fit would set it
    _trainer("vpf", epochs=2, checkpoint=ck).fit(zeroed, x, resume=True)
    assert calls == []
    _trainer("vpf", epochs=1).fit(BoltzmannMachine([12, 8], seed=1), x)
    assert calls == [1]


def test_recorded_config_holds_every_option_of_the_method(tmp_path):
    from vpf_spiking.trainers import params

    ck = tmp_path / "ck.npz"
    tr = _trainer("pcd", epochs=1, checkpoint=ck)
    assert tr.config() == {**params.defaults("pcd"), "batch_size": 32, "seed": 3, "learning_rate": 0.01,
                           "epochs": 1, "progress": False}
    tr.fit(BoltzmannMachine([12, 8], seed=1), toy_data())
    assert load_checkpoint(ck).trainer == tr.config()
    assert "k" not in VPFTrainer(1).config() and "e_step_sweeps" not in CDTrainer(epochs=1).config()


def test_resume_ignores_settings_that_do_not_change_the_result(tmp_path):
    x = toy_data()
    ck = tmp_path / "ck.npz"
    straight = BoltzmannMachine([12, 8], seed=1)
    _trainer("vpf", epochs=2).fit(straight, x)
    _trainer("vpf", epochs=1, checkpoint=ck).fit(BoltzmannMachine([12, 8], seed=1), x)
    m = BoltzmannMachine([12, 8], seed=1)
    make_trainer("vpf", epochs=2, batch_size=32, seed=3, checkpoint=ck, visible_bias_init="zero",
                 progress=True).fit(m, x, resume=True)
    assert params_equal(m, straight)


# ---------------------------------------------------------------------------- lean update (issue 16)
def _textbook_float32_step(kind, p, g, state, t, lr=0.01, wd=0.1, mom=0.5):
    """The optimisers' arithmetic as plain numpy expressions (temporaries and all), in place on ``p``."""
    f = np.float32
    g = g + f(wd) * p
    if kind == "sgd":
        state["u"] = f(mom) * state["u"] + g
        p -= state["u"] * f(lr)
        return
    b1, b2, eps = 0.9, 0.999, 1e-8
    scale = f(lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * (1 - b1) / np.sqrt(1 - b2))
    eps_t = f(eps * np.sqrt(1 - b2 ** t) / np.sqrt(1 - b2))
    state["M"] = f(b1) * state["M"] + g
    state["V"] = f(b2) * state["V"] + g * g
    p -= state["M"] / (np.sqrt(state["V"]) + eps_t) * scale


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_in_place_update_is_bit_for_bit_the_numpy_expression(kind, monkeypatch):
    monkeypatch.setenv("VPF_THREADS", "2")
    rng = np.random.default_rng(6)
    p = rng.normal(size=(700, 300)).astype(np.float32)  # several chunks
    ref = p.copy()
    state = {"u": np.zeros_like(p), "M": np.zeros_like(p), "V": np.zeros_like(p)}
    opt = make_optimizer(kind, 0.01, weight_decay=0.1, momentum=0.5 if kind == "sgd" else 0.0)
    for t in range(1, 5):
        g = rng.normal(size=p.shape).astype(np.float32)
        _textbook_float32_step(kind, ref, g, state, t)
        opt.step({"W1": p}, {"W1": g.copy()})
        assert np.array_equal(p, ref), t


def test_optimizer_step_allocates_no_parameter_sized_arrays(monkeypatch):
    import tracemalloc

    monkeypatch.setenv("VPF_THREADS", "1")
    rng = np.random.default_rng(7)
    params = {"W1": rng.normal(size=(784, 500)).astype(np.float32), "b1": np.zeros(500, np.float32)}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    for kind in ("adam", "sgd"):
        opt = make_optimizer(kind, 1e-3, weight_decay=1e-4, momentum=0.5 if kind == "sgd" else 0.0)
        opt.step(params, {k: v.copy() for k, v in grads.items()})  # state and scratch allocated here
        tracemalloc.start()
        try:
            for _ in range(3):
                for k in grads:
                    grads[k][...] = 0.1
                opt.step(params, grads)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 * 1024, (kind, peak)  # a chunk-sized temporary alone is 256 KiB


def test_rbm_flow_step_is_three_gemms(monkeypatch):
    from vpf_spiking.trainers import FlowWorkspace

    m = BoltzmannMachine([20, 10], seed=0)
    ws = FlowWorkspace(m, 8)
    ws.y[0][...] = toy_data(8, 20)
    calls = []
    matmul = np.matmul
    monkeypatch.setattr(np, "matmul", lambda *a, **k: calls.append(1) or matmul(*a, **k))
    ws.compute(m)
    assert len(calls) == 3  # v W, h W^T and the stacked gradient [v; g_v]^T [g_h; h]


@pytest.mark.parametrize("flow", ["joint", "rao-blackwell"])
def test_minibatch_steps_allocate_no_arrays(flow, monkeypatch):
    """After the first step (buffers, optimizer state) an epoch's minibatch step allocates nothing big."""
    import tracemalloc

    monkeypatch.setenv("VPF_THREADS", "1")
    m = BoltzmannMachine([300, 250], seed=0)  # W has more elements than one chunk
    x = toy_data(500, 300)
    tr = VPFTrainer(1, batch_size=100, weight_decay=1e-4, flow=flow)
    peaks = []

    def minibatches(n, rng, bar, epoch, step, *args):  # the trainer's own step closure, watched
        batches = tr._batches(n, rng)
        step(batches[0])
        tracemalloc.start()
        try:
            for idx in batches[1:]:
                step(idx)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        return 0.0

    monkeypatch.setattr(tr, "_minibatches", minibatches)
    tr._run_epoch(m, x, np.random.default_rng(0), None, 1)
    # one (100, 250) float32 temporary alone is 100 KB; numpy's broadcasting ufuncs (z += b) use a
    # fixed internal buffer of 8192 elements (32 KB) whatever the array size
    assert peaks and peaks[0] < 64 * 1024, peaks
