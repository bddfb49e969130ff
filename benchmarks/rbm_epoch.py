"""One MNIST epoch of a 784-500 RBM: VPF, CD-1, scikit-learn's BernoulliRBM, and the GEMM limit.

Usage::

    .venv/bin/python benchmarks/rbm_epoch.py [--repeats 3] [--threads N] [--data-dir DIR] [--examples N]

Run it twice, ``--threads 1`` and ``--threads 2`` (issue 16 asks for ``vpf_rb_over_sklearn`` and
the plain-VPF ratios with 1 and with 2 BLAS threads, each measured in one run), on a quiet
machine.  ``--threads`` caps the BLAS pool of every candidate (scikit-learn included) and sets
``VPF_BLAS_THREADS``; the optimisers' elementwise threads follow ``VPF_THREADS`` (default: the
free cores).  ``--examples N`` takes the first N images (a quick check that it runs, not a
figure).

Every figure is the best (minimum) wall time of ``--repeats`` rounds (each round runs every
candidate once, so changes of load hit all alike), all measured in this one process on the
60,000 binarised MNIST training images, batch size 100, float32:

* ``vpf_epoch_s``: ``VPFTrainer(epochs=1).fit(model, x)`` with the default Adam (E-step over all
  examples, 600 M-step minibatches, the input check and the per-epoch metrics included);
* ``vpf_sgd_epoch_s``: the same with ``optimizer="sgd"`` (4 elementwise passes per weight update,
  weight decay included, instead of Adam's 12), the optimizer scikit-learn uses;
* ``vpf_rb_epoch_s``: ``VPFTrainer(epochs=1, flow="rao-blackwell")`` (Adam): the fused kernel
  ``RaoBlackwellWorkspace``, h resampled per minibatch with the current parameters, the hidden
  flip terms dropped from the gradient (docs/theory.md, docs/training.md), no E-step and three
  products per minibatch (``v W``, ``h W^T``, ``g_v^T h``); ``vpf_rb_over_sklearn`` its ratio
  to scikit-learn's epoch, ``gemm_rb_epoch_s`` those 3 x 600 products alone and
  ``roofline_fraction_rb`` = ``gemm_rb_epoch_s / vpf_rb_epoch_s``;
* ``cd1_epoch_s``: ``CDTrainer(k=1, epochs=1).fit(model, x)`` (Adam as well);
* ``sklearn_epoch_s``: ``BernoulliRBM(n_components=500, batch_size=100, n_iter=1).fit(x)`` on the
  float32 array (it keeps float32); ``sklearn_float64_epoch_s`` on a float64 copy, for reference;
* ``gemm_epoch_s``: only the matrix products a VPF epoch performs, same shapes, same count,
  preallocated outputs: E-step ``(2000x784)@(784x500)`` x 30, and per minibatch
  ``(100x784)@(784x500)``, ``(100x500)@(500x784)`` and the stacked gradient
  ``(784x200)@(200x500)``.  ``gemm_gflops`` = their FLOPs (2mnk each) / that time, and
  ``roofline_fraction`` = ``gemm_epoch_s / vpf_epoch_s``: the share of the VPF epoch that the
  GEMMs alone would take at the measured throughput.

scikit-learn's epoch does the same GEMM work as a VPF epoch (five 100x784x500 products per
minibatch against VPF's four plus the E-step's one), so ``vpf_over_sklearn`` cannot go below
``gemm_epoch_s / sklearn_epoch_s`` however lean the rest of the VPF step is.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vpf_spiking.data import load_images  # noqa: E402
from vpf_spiking.model import BoltzmannMachine  # noqa: E402
from vpf_spiking.trainers import _E_CHUNK, CDTrainer, VPFTrainer  # noqa: E402

NV, NH, B = 784, 500, 100


def gemm_epoch(n):
    """The VPF epoch's matrix products alone: returns (function running them, their FLOPs)."""
    rng = np.random.default_rng(0)
    W = (0.01 * rng.standard_normal((NV, NH))).astype(np.float32)
    xe = (rng.random((_E_CHUNK, NV)) < 0.13).astype(np.float32)
    ze = np.empty((_E_CHUNK, NH), np.float32)
    vb = (rng.random((3 * B, NV)) < 0.13).astype(np.float32)
    hb = (rng.random((3 * B, NH)) < 0.5).astype(np.float32)
    zh = np.empty((B, NH), np.float32)
    zv = np.empty((B, NV), np.float32)
    G = np.empty((NV, NH), np.float32)
    n_e, n_b = -(-n // _E_CHUNK), -(-n // B)

    def run():
        for _ in range(n_e):
            np.matmul(xe, W, out=ze)
        for _ in range(n_b):
            np.matmul(vb[B:2 * B], W, out=zh)
            np.matmul(hb[B:2 * B], W.T, out=zv)
            np.matmul(vb[B:].T, hb[:2 * B], out=G)

    flops = 2 * n * NV * NH + n_b * (2 * B * NV * NH * 2 + 2 * (2 * B) * NV * NH)
    return run, flops


def gemm_rb_epoch(n):
    """The RB-VPF epoch's matrix products alone (three per minibatch, no E-step): (function, FLOPs)."""
    rng = np.random.default_rng(0)
    W = (0.01 * rng.standard_normal((NV, NH))).astype(np.float32)
    v = (rng.random((B, NV)) < 0.13).astype(np.float32)
    h = (rng.random((B, NH)) < 0.5).astype(np.float32)
    zh = np.empty((B, NH), np.float32)
    zv = np.empty((B, NV), np.float32)
    G = np.empty((NV, NH), np.float32)
    n_b = -(-n // B)

    def run():
        for _ in range(n_b):
            np.matmul(v, W, out=zh)
            np.matmul(h, W.T, out=zv)
            np.matmul(zv.T, h, out=G)

    return run, n_b * 3 * 2 * B * NV * NH


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS threads (default: all cores)")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--examples", type=int, default=60000, help="use the first N training images (quick checks)")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(args.threads)
    # the trainers drop to one BLAS thread on a busy machine unless told otherwise
    os.environ["VPF_BLAS_THREADS"] = str(args.threads)
    x = load_images("mnist", "train", data_dir=args.data_dir)
    assert x.shape == (60000, NV) and x.dtype == np.float32
    x = x[:args.examples]
    blas = [f"{i['internal_api']} {i.get('version')} threads={i['num_threads']}" for i in threadpool_info()
            if i["user_api"] == "blas"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, BLAS {'; '.join(blas)}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} (other processes share the cores)")
    print(f"data: mnist train {x.shape}, batch {B}, repeats {args.repeats} (best of), BLAS threads {args.threads}")

    def vpf():
        m = BoltzmannMachine([NV, NH], seed=0)
        return VPFTrainer(1, batch_size=B, progress=False).fit(m, x)

    def vpf_sgd():
        m = BoltzmannMachine([NV, NH], seed=0)
        return VPFTrainer(1, batch_size=B, optimizer="sgd", learning_rate=0.01, progress=False).fit(m, x)

    def vpf_rb():
        m = BoltzmannMachine([NV, NH], seed=0)
        return VPFTrainer(1, batch_size=B, flow="rao-blackwell", progress=False).fit(m, x)

    def cd1():
        m = BoltzmannMachine([NV, NH], seed=0)
        return CDTrainer(k=1, epochs=1, batch_size=B, progress=False).fit(m, x)

    def sk(data=x):
        from sklearn.neural_network import BernoulliRBM

        return BernoulliRBM(n_components=NH, batch_size=B, n_iter=1, random_state=0).fit(data)

    def sk64():
        return sk(x64)

    x64 = None if args.skip_sklearn else x.astype(np.float64)
    gemm_run, flops = gemm_epoch(x.shape[0])
    gemm_rb_run, _ = gemm_rb_epoch(x.shape[0])
    candidates = {"vpf_epoch_s": vpf, "vpf_sgd_epoch_s": vpf_sgd, "vpf_rb_epoch_s": vpf_rb, "cd1_epoch_s": cd1,
                  "gemm_epoch_s": gemm_run, "gemm_rb_epoch_s": gemm_rb_run}
    if not args.skip_sklearn:
        candidates.update({"sklearn_epoch_s": sk, "sklearn_float64_epoch_s": sk64})
    df = vpf()  # warm-up (imports, page faults)
    vpf_rb()
    gemm_run()
    # Rounds, each running every candidate once, so a change of load on the shared machine hits
    # all of them alike; the best time of each is kept.
    times = {k: [] for k in candidates}
    for _ in range(args.repeats):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    results = {k: min(v) for k, v in times.items()}
    gemm_s = results.pop("gemm_epoch_s")
    gemm_rb_s = results.pop("gemm_rb_epoch_s")
    results["gemm_epoch_s"] = gemm_s
    results["gemm_rb_epoch_s"] = gemm_rb_s
    results["gemm_gflops"] = flops / gemm_s / 1e9
    results["vpf_gemm_gflop"] = flops / 1e9
    if "sklearn_epoch_s" in results:
        results["vpf_over_sklearn"] = results["vpf_epoch_s"] / results["sklearn_epoch_s"]
        results["vpf_rb_over_sklearn"] = results["vpf_rb_epoch_s"] / results["sklearn_epoch_s"]
        results["cd1_over_sklearn"] = results["cd1_epoch_s"] / results["sklearn_epoch_s"]
        results["vpf_sgd_over_sklearn"] = results["vpf_sgd_epoch_s"] / results["sklearn_epoch_s"]
    results["roofline_fraction"] = gemm_s / results["vpf_epoch_s"]
    results["roofline_fraction_sgd"] = gemm_s / results["vpf_sgd_epoch_s"]
    results["roofline_fraction_rb"] = gemm_rb_s / results["vpf_rb_epoch_s"]
    results["vpf_objective_epoch1"] = float(df["objective"].iloc[0])
    for k, v in results.items():
        print(f"{k}: {v:.4g}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("all times (s): " + " | ".join(f"{k.removesuffix('_epoch_s')} " + " ".join(f"{t:.2f}" for t in v)
                                         for k, v in times.items()))


if __name__ == "__main__":
    main()
