"""Experiment: spiking-engine training on MNIST next to the batch engine with the same updates.

For one network (``--network rbm-500`` or a DBM such as ``--sizes 784,200,200 --intra 0,1,1``):

1. spiking: :class:`SpikingTrainer` on the first ``--n-train`` binarised MNIST training images,
   one pass, one online update per example (per-example learning rate
   ``eta * T * learn_ms / tau``);
2. batch, online: the same algorithm in numpy (E-step by ``bottom_up`` with the current
   parameters, then one SGD step on K of that example) -- what the spiking network does in
   expectation;
3. batch engine: :class:`vpf_spiking.trainers.VPFTrainer` with batch size 1, SGD and the same
   learning rate, one epoch (the same number of updates; its E-step is computed once per epoch,
   Algorithm 1).

Then, for every model: reconstruction error (spec section 7; ``--n-test`` test images, rows/columns
corrupted, 25 Gibbs steps), the VPF objective K on test images, filters and confabulations.
Writes ``OUT/summary.csv``, ``OUT/*.png``, ``OUT/<name>.npz`` models and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vpf_spiking import BoltzmannMachine
from vpf_spiking.data import load_images
from vpf_spiking.objective import objective
from vpf_spiking.errors import TrainingDiverged
from vpf_spiking.sampling import bottom_up
from vpf_spiking.trainers import online_vpf


def evaluate(model, test, seed=0):
    from vpf_spiking.evaluation.reconstruction import reconstruction_errors, summarize_errors

    err = reconstruction_errors(model, test, corruptions=(("rows", 8), ("columns", 8)), steps=25, seeds=(seed,))
    summ = summarize_errors(err)
    out = {}
    for r in summ.itertuples():
        out[f"recon_{r.pattern}{r.k}"] = float(r.mean_error)
        out[f"recon_{r.pattern}{r.k}_se"] = float(r.se_images)
    state, _ = bottom_up(model, test, np.random.default_rng(seed))
    out["test_K"] = objective(model, state)
    out["mean_sq_W1"] = float(np.mean(model.W[1].astype(np.float64) ** 2))
    return out


def pictures(model, name, out, x):
    """Filters, and confabulations (Algorithm 3, P prior estimated on the training images, 100 steps)."""
    from vpf_spiking.generation import confabulate
    from vpf_spiking.plotting import save_filters, save_image_grid

    save_filters(model.W[1], out / f"filters-{name}.png", n=100, title=f"{name}: first 100 filters")
    samples = confabulate(model, 50, prior="p", data=x[:2000], steps=100, rng=np.random.default_rng(0))
    save_image_grid(samples, out / f"samples-{name}.png", ncols=10, title=f"{name}: confabulations (P prior)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="rbm-500")
    ap.add_argument("--sizes", help="e.g. 784,200,200 (instead of --network)")
    ap.add_argument("--intra", help="e.g. 0,1,1 with --sizes")
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--eta", type=float, default=0.01)
    ap.add_argument("--settle-ms", type=float, default=30.0)
    ap.add_argument("--learn-ms", type=float, default=10.0)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--device", default="cpp_standalone")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="runs/spiking-mnist")
    ap.add_argument("--pictures-only", action="store_true", help="only redraw pictures of saved models")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: spiking,online,batch,batch100")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))

    x = load_images("mnist", "train", data_dir=args.data_dir)[: args.n_train].astype(np.float64)
    test = load_images("mnist", "test", data_dir=args.data_dir)[: args.n_test].astype(np.float64)
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
        intra = [bool(int(s)) for s in args.intra.split(",")] if args.intra else False
        init = BoltzmannMachine(sizes, intra=intra, seed=0, dtype=np.float64, name="dbm")
        name = "-".join(map(str, sizes)) + ("-intra" if any(init.intra) else "")
    else:
        init = BoltzmannMachine.from_network(args.network, seed=0, dtype=np.float64)
        name = args.network
    lr = args.eta * init.temperature * args.learn_ms / init.tau_ms
    if args.pictures_only:
        for engine in ("spiking", "online", "batch", "batch100"):
            path = out / f"{name}-{engine}.npz"
            if path.exists():
                pictures(BoltzmannMachine.load(path).copy(np.float64), f"{name}-{engine}", out, x)
        return
    rows, timing = [], {}

    if "spiking" not in skip:
        from vpf_spiking.spiking import SpikingTrainer

        m = init.copy()
        tr = SpikingTrainer(epochs=1, eta=args.eta, settle_ms=args.settle_ms, learn_ms=args.learn_ms,
                            chunk=args.chunk, device=args.device, seed=0,
                            checkpoint=out / f"{name}-spiking-checkpoint.npz", checkpoint_every=5)
        t = time.perf_counter()
        hist = tr.fit(m, x, resume=True)
        timing["spiking"] = time.perf_counter() - t
        hist.to_csv(out / f"{name}-spiking-metrics.csv", index=False)
        m.save(out / f"{name}-spiking.npz")
        sim = float(hist["sim_s"].sum())
        rows.append({"engine": f"spiking ({args.device})", "wall_s": timing["spiking"],
                     "sim_s": sim, "sim_wall_s": float(hist["wall_s"].sum()), **evaluate(m, test)})
        pictures(m, f"{name}-spiking", out, x)
    if "online" not in skip:
        m = init.copy()
        t = time.perf_counter()
        try:
            online_vpf(m, x, learning_rate=lr)
            done = len(x)
        except TrainingDiverged as exc:
            done = exc.examples_done
        rows.append({"engine": "batch algorithm, online E-step (numpy)", "wall_s": time.perf_counter() - t,
                     "diverged_at": done if done < len(x) else None, **evaluate(m, test)})
        if done == len(x):
            m.save(out / f"{name}-online.npz")
            pictures(m, f"{name}-online", out, x)
    if "batch" not in skip:
        from vpf_spiking.trainers import VPFTrainer

        m = init.copy(np.float32)
        t = time.perf_counter()
        from vpf_spiking.errors import VPFError

        diverged = None
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                VPFTrainer(epochs=1, batch_size=1, learning_rate=lr, optimizer="sgd", seed=0,
                           progress=False).fit(m, x.astype(np.float32))
        except VPFError as exc:  # the parameters went non-finite: report, evaluate nothing
            diverged = str(exc)
        row = {"engine": "batch engine VPFTrainer (batch 1, sgd)", "wall_s": time.perf_counter() - t}
        if diverged:
            rows.append({**row, "diverged_at": diverged})
        else:
            rows.append({**row, **evaluate(m.copy(np.float64), test)})
        if not diverged:
            m.save(out / f"{name}-batch.npz")
            pictures(m.copy(np.float64), f"{name}-batch", out, x)
    if "batch100" not in skip:
        # the batch engine as it is meant to be used (E-step per epoch, minibatches of 100, Adam),
        # with as many updates as the spiking run made: 100 epochs over the same images
        from vpf_spiking.trainers import VPFTrainer

        m = init.copy(np.float32)
        epochs = max(1, round(len(x) / 100))
        t = time.perf_counter()
        VPFTrainer(epochs=epochs, batch_size=100, learning_rate=1e-3, optimizer="adam", seed=0,
                   progress=False).fit(m, x.astype(np.float32))
        rows.append({"engine": f"batch engine VPFTrainer (batch 100, adam 1e-3, {epochs} epochs)",
                     "wall_s": time.perf_counter() - t, **evaluate(m.copy(np.float64), test)})
        m.save(out / f"{name}-batch100.npz")
        pictures(m.copy(np.float64), f"{name}-batch100", out, x)
    rows.append({"engine": "initial (untrained)", **evaluate(init, test)})
    df = pd.DataFrame(rows)
    suffix = "" if not skip else "-without-" + "-".join(sorted(skip))
    df.to_csv(out / f"{name}-summary{suffix}.csv", index=False)
    print(f"{name}: per-example learning rate {lr:g}")
    (out / f"{name}-settings.json").write_text(json.dumps({**vars(args), "per_example_lr": lr}, indent=1))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
