"""Benchmark: the full evaluation of one 784-500 RBM on MNIST (spec section 7), timed per step.

    .venv/bin/python benchmarks/evaluation.py [--model runs/rbm-mnist/vpf-500/model.npz]

Steps: reconstruction (6 corruption patterns x 3 seeds x 10,000 test images), Parzen window
(10,000 confabulations, sigma on 1,000 validation images, 10,000 test images), AIS (100 runs).
Without --model it trains a VPF RBM for one epoch on 10,000 images first (not timed).
Prints ``name: value`` lines; ``evaluation_wall_s`` is the sum of the timed steps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vpf_spiking.protocols.ais import run_ais  # noqa: E402
from vpf_spiking.protocols.inputs import load_data  # noqa: E402
from vpf_spiking.protocols.parzen import run_parzen  # noqa: E402
from vpf_spiking.protocols.reconstruction import run_reconstruction  # noqa: E402
from vpf_spiking.evaluation.parzen import DEFAULT_SIGMAS  # noqa: E402
from vpf_spiking.evaluation.reconstruction import parse_patterns  # noqa: E402
from vpf_spiking.model import BoltzmannMachine  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a trained 784-500 RBM (.npz); default: train one epoch of VPF")
    ap.add_argument("--data-dir", default=os.environ.get("VPF_DATA_DIR") or str(REPO.parent / "shared" / "data"))
    ap.add_argument("--recon-steps", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sample-steps", type=int, default=100)
    ap.add_argument("--n-betas", type=int, default=14500)
    ap.add_argument("--n-runs", type=int, default=100)
    ap.add_argument("--train-times", action="store_true",
                    help="instead: seconds per epoch of VPF, CD-1, PCD-1 and PCD-10 on 10,000 images (one BLAS thread)")
    args = ap.parse_args()
    if args.train_times:
        return train_times(args)

    data = load_data({"dataset": "mnist", "data_dir": args.data_dir, "validation": 1000, "n_train": None,
                      "n_test": None}, greyscale=True)
    if args.model:
        model = BoltzmannMachine.load(args.model)
        print(f"model: {args.model}")
    else:
        from vpf_spiking.trainers import VPFTrainer

        model = BoltzmannMachine([784, 500], seed=0)
        VPFTrainer(epochs=1, progress=False).fit(model, data["train"][:10000])
        print("model: VPF RBM 784-500, 1 epoch on 10,000 images")
    print(f"cpu_count: {os.cpu_count()}")
    print(f"load_average_1min: {os.getloadavg()[0]:.2f}")
    times = {}
    t0 = time.perf_counter()
    rs = {"corruptions": parse_patterns(["rows:4", "rows:8", "rows:12", "columns:4", "columns:8", "columns:12"]),
          "steps": args.recon_steps, "seeds": tuple(range(args.seeds)), "fill": "noise"}
    tab = run_reconstruction(model, data["test"], rs, progress=False)
    times["reconstruction_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ps = {"n_samples": 10000, "steps": args.sample_steps, "prior": "p", "sigmas": DEFAULT_SIGMAS}
    res, _ = run_parzen(model, data["train"], data["valid_grey"], data["test_grey"], ps)
    times["parzen_total_s"] = time.perf_counter() - t0
    times["parzen_sampling_s"] = res["sampling_s"]
    times["parzen_density_s"] = res["parzen_s"]
    t0 = time.perf_counter()
    ais = run_ais(model, data["train"], data["test"],
                  {"n_betas": args.n_betas, "n_runs": args.n_runs, "schedule": "sm", "seed": 0}, progress=False)
    times["ais_s"] = time.perf_counter() - t0
    wall = times["reconstruction_s"] + times["parzen_total_s"] + times["ais_s"]
    print(f"reconstruction_runs: {len(rs['corruptions']) * args.seeds} x 10000 images x {args.recon_steps} Gibbs steps")
    print(f"reconstruction_mean_error_8_rows: {tab.set_index('corruption').loc['8 rows', 'mean_error']:.4f}")
    print(f"parzen_log_likelihood: {res['mean']:.2f} +- {res['se']:.2f} (sigma {res['sigma']:.3g})")
    print(f"ais_test_ll: {ais['test_ll']:.2f} +- {ais['ll_se']:.2f} (log Z {ais['log_z']:.2f} +- {ais['log_z_se']:.3f}, "
          f"{args.n_runs} runs x {args.n_betas} betas)")
    print(f"ais_ms_per_beta: {1000 * times['ais_s'] / args.n_betas:.2f}")
    for k, v in times.items():
        print(f"{k}: {v:.1f}")
    print(f"evaluation_wall_s: {wall:.1f}")
    slowest = max(["reconstruction_s", "parzen_total_s", "ais_s"], key=times.get)
    print(f"slowest_step: {slowest}")


def train_times(args):
    """One epoch on the same 10,000 MNIST images per method, same settings, one after another."""
    from threadpoolctl import threadpool_limits

    from vpf_spiking.data import load_images
    from vpf_spiking.trainers import make_trainer

    x = load_images("mnist", "train", data_dir=args.data_dir)[:10000]
    print(f"load_average_1min: {os.getloadavg()[0]:.2f}")
    with threadpool_limits(1, user_api="blas"):
        for label, method, kw in [("vpf", "vpf", {}), ("cd1", "cd", {"k": 1}), ("pcd1", "pcd", {"k": 1}),
                                  ("pcd10", "pcd", {"k": 10})]:
            model = BoltzmannMachine([784, 500], seed=0)
            t0 = time.perf_counter()
            make_trainer(method, epochs=1, progress=False, **kw).fit(model, x)
            print(f"{label}_epoch_10k_s: {time.perf_counter() - t0:.2f}")


if __name__ == "__main__":
    main()
