"""``vpf demo``: train a small RBM on MNIST and draw what it learned (under a minute)."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import ConfigError
from ..trainers.params import OPTIONS
from .common import command_line, formatter, print_train_summary
from .options import add_arguments, from_args

#: The demo's own defaults of the trainer options it offers (the others: the declared ones).
# 20 epochs on 20,000 images (4,000 updates, ~10 s): at 5 epochs on 10,000 the confabulations
# were one blurry digit (1 class); measured in docs/results/sample-quality.md's setting
DEMO_DEFAULTS = {"epochs": 20}
DEMO_OPTIONS = ("epochs", "learning_rate", "seed")
HELPS = {"seed": "seed of the initial weights, of training and of the pictures"}

DESCRIPTION = """\
A short real run: a 784-100 RBM (networks/rbm-100.toml) trained by VPF (Adam, learning rate
1e-3, weight decay 1e-4: the paper's settings) for 20 epochs on the first 20,000 MNIST training
images (well under a minute on 2 cores), then pictures of what it learned.
Writes into OUT (default runs/demo/): model.npz, metrics.csv, filters.png (the weights of the
hidden units as 28x28 images) and samples.png (test images, their reconstructions, and
confabulations: images generated from the model by Algorithm 3 of the paper).

MNIST is looked up in --data-dir, else $VPF_DATA_DIR, else the data module's default places, else
../shared/data relative to the current folder (where it lies beside a checkout of the project).
"""


def add_parser(subparsers):
    p = subparsers.add_parser("demo", help="train a small RBM on MNIST and draw what it learned (< 1 min)",
                              description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("--out", metavar="DIR", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/")
    p.add_argument("--n-train", type=int, default=20000, metavar="N", help="training images (default: 20000)")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier demo in OUT")
    # --epochs, --lr, --seed: declared in vpf_spiking.trainers.params, with the demo's defaults
    add_arguments(p, ("vpf",), include=DEMO_OPTIONS, defaults=DEMO_DEFAULTS, helps=HELPS)
    p.set_defaults(func=run)
    return p


def demo_config(epochs=DEMO_DEFAULTS["epochs"], n_train=20000, lr=OPTIONS["learning_rate"].default,
                seed=OPTIONS["seed"].default, data_dir=None):
    """The ``train`` protocol that ``vpf demo`` runs (the same as protocols/demo.toml by default).

    The other trainer options are left at their defaults; the run folder's ``protocol.toml``
    lists them all (the ``train`` kind records every setting it used).
    """
    from ..protocols import ProtocolConfig

    data = {"dataset": "mnist", "n_train": n_train}
    if data_dir:
        data["data_dir"] = str(data_dir)
    return ProtocolConfig({
        "kind": "train", "name": "demo",
        "network": {"name": "rbm-100", "seed": seed},
        "data": data,
        "training": {"method": "vpf", "epochs": epochs, "learning_rate": lr, "seed": seed},
    }, source="vpf demo")


def run(args):
    s = from_args(args, ("vpf",), defaults=DEMO_DEFAULTS)  # --epochs, --lr, --seed (--n-train: as data.n_train)
    from threadpoolctl import threadpool_limits

    from ..data import resolve_data
    from ..protocols import default_data_dir, run_protocol

    data_dir = default_data_dir(args.data_dir)
    config = demo_config(s["epochs"], args.n_train, s["learning_rate"], s["seed"], data_dir)
    out = Path(args.out)
    print(f"vpf demo: training a 784-100 RBM by VPF, {s['epochs']} epoch(s) on {args.n_train:,} MNIST images")
    # The demo's products are small (100 x 784 x 100); with other work on the cores, two BLAS
    # threads made its training ~8x slower and its Gibbs chains ~30x slower than one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        model, metrics = run_protocol(config, out_dir=out, overwrite=args.overwrite, command=command_line(args))
        t_train = time.perf_counter() - t0
        train = resolve_data("mnist", "train", data_dir=data_dir)[:args.n_train]
        test = resolve_data("mnist", "test", data_dir=data_dir)
        pictures = demo_figures(model, train, test, out, seed=s["seed"])
    print_train_summary(out, metrics, t_train)
    print("pictures: " + ", ".join(str(p) for p in pictures))
    print(f"next: vpf info {out / 'model.npz'}   |   vpf train --help   |   vpf run protocols/train-rbm-mnist.toml")
    return 0


def demo_figures(model, train_images, test_images, out_dir, seed=0, n_filters=100, steps=100):
    """Write filters.png and samples.png for a trained model with square images; return their paths.

    samples.png: 10 test images, their reconstructions p(v | h) after one up-down pass, and 10
    confabulations (Algorithm 3, :func:`vpf_spiking.generation.confabulate`) with the P prior
    (the mean bottom-up activation over ``train_images``) and ``steps`` Gibbs steps.
    """
    import numpy as np

    from ..generation import confabulate
    from ..plotting import save_filters, save_image_grid
    from ..sampling import bottom_up, sample_layer

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    side = int(round(np.sqrt(model.sizes[0])))
    if side * side != model.sizes[0]:
        raise ConfigError(f"pictures need square images; the model has {model.sizes[0]} visible units")
    shape = (side, side)
    filters = save_filters(model.W[1], out_dir / "filters.png", n=n_filters, shape=shape,
                           title=f"weights of the first {min(n_filters, model.sizes[1])} hidden units")
    k = 10
    v = np.asarray(test_images[:k], dtype=model.dtype)
    state, _ = bottom_up(model, v, rng)
    recon = sample_layer(model, state, 0, rng, below=False, above=True)
    confab = confabulate(model, k, prior="p", steps=steps, rng=rng, data=train_images)
    samples = save_image_grid(np.concatenate([v, recon, confab]), out_dir / "samples.png", shape=shape,
                              ncols=k, title=f"test images / reconstructions p(v|h) / "
                                             f"confabulations (P prior, {steps} Gibbs steps)")
    return [filters, samples]
