"""``vpf sample MODEL``: confabulations from a trained model (Algorithm 3, :mod:`vpf_spiking.generation`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .common import formatter

#: ``--below``: the values of ``below=`` of :func:`vpf_spiking.generation.confabulate`.
BELOW = ("mean", "zero")

DESCRIPTION = """\
Draw confabulations from a trained model (Algorithm 3): the top layer from a prior, then
K Gibbs steps per pair of layers down to the visible layer.  Writes a grid of the visible
probabilities p(v | h1) as a PNG and, optionally, all samples as .npy.

priors:
  r   every top unit Bernoulli(1/2)
  p   top unit j Bernoulli(mean bottom-up activation of j over the training data; needs --data)

K: by default 100, which measured best on a VPF RBM-500 trained with the default settings (the
Frechet distance to the test images falls from 303 at K = 1 to 243 at K = 100;
docs/results/sample-quality.md), except for models trained in a way whose chains need another K
(recorded in the model file: Rao-Blackwellised VPF, K = 2, docs/results/variants.md).

examples:
  vpf sample runs/dbm/model.npz --prior r --out grid.png
  vpf sample runs/dbm/model.npz --prior p --data mnist --n 10000 --steps 100 --out grid.png --npy samples.npy
"""


def add_parser(subparsers):
    p = subparsers.add_parser("sample", help="draw confabulations from a trained model (Algorithm 3, R or P prior)",
                              description=DESCRIPTION, formatter_class=formatter)
    p.add_argument("model", metavar="MODEL", help="a model .npz written by 'vpf train'")
    p.add_argument("--prior", default="r", type=str.lower, help="r or p (default: r)")
    p.add_argument("--data", metavar="mnist|fashion-mnist|FILE",
                   help="training data for the p prior (its mean bottom-up top-layer activation)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/ and fashion-mnist/")
    p.add_argument("--n", type=int, default=100, help="number of samples (default: 100)")
    p.add_argument("--steps", type=int, default=None, metavar="K",
                   help="Gibbs steps per stage (default: what the model's training method needs, else 100)")
    p.add_argument("--sweeps", type=int, default=1, help="asynchronous sweeps per update of a layer with intra-layer weights (default: 1)")
    p.add_argument("--binary", action="store_true", help="binary samples instead of p(v | h1)")
    p.add_argument("--top-down", choices=("pair", "held"), default="pair",
                   help="pair: each stage samples only its two layers (default); held: layers above "
                        "also send their top-down input")
    p.add_argument("--below", choices=BELOW, default="mean",
                   help="what the layers not generated yet are held at during the stages above them: mean "
                        "(their mean activation; default) or zero (a DBM's stage 2 then samples h1 as if "
                        "the image were blank); no effect on an RBM")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", default="samples.png", metavar="PNG", help="grid image (default: samples.png; at most 100 shown)")
    p.add_argument("--npy", metavar="FILE", help="also save all samples as a .npy array")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args):
    import numpy as np

    from ..data import resolve_data
    from ..generation import PRIORS, confabulate, recommended_steps
    from ..io import atomic_open
    from ..model import BoltzmannMachine
    from ..plotting import save_image_grid
    from ..protocols.inputs import default_data_dir

    if args.prior not in PRIORS:
        raise ConfigError(f"--prior: unknown value {args.prior!r} (choose from r, p)")
    for opt, v in (("--n", args.n), ("--steps", args.steps), ("--sweeps", args.sweeps)):
        if v is not None and v < 1:
            raise ConfigError(f"{opt} must be at least 1, got {v}")
    if args.prior == "p" and not args.data:
        raise ConfigError("--prior p needs --data (the training set whose bottom-up activations define it)")
    if args.prior == "r" and args.data:
        raise ConfigError("--data is only used by --prior p")
    model = BoltzmannMachine.load(args.model)
    if args.steps is None:
        args.steps, why = recommended_steps(model)
        print(f"K = {args.steps} Gibbs steps per stage: {why}")
    data = resolve_data(args.data, "train", data_dir=default_data_dir(args.data_dir)) if args.data else None
    samples = confabulate(model, args.n, prior=args.prior, steps=args.steps, rng=args.seed, data=data,
                          sweeps=args.sweeps, binary=args.binary, progress=not args.no_progress,
                          top_down=args.top_down, below=args.below)
    side = int(round(np.sqrt(model.sizes[0])))
    shape = (side, side) if side * side == model.sizes[0] else (1, model.sizes[0])
    png = save_image_grid(samples[:100], args.out, shape=shape, ncols=10,
                          title=f"{Path(args.model).stem}: prior {args.prior.upper()}, K={args.steps}")
    print(f"wrote {png}")
    if args.npy:
        npy = Path(args.npy)
        with atomic_open(npy, "wb") as fh:
            np.save(fh, samples)
        print(f"wrote {npy} ({samples.shape[0]} x {samples.shape[1]})")
    return 0
