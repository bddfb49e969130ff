"""``vpf evaluate MODEL``: reconstruction, Parzen, AIS and sample-quality evaluation of a saved model."""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

from ..errors import ConfigError

#: The evaluations, in the order they run; all of them when none is asked for.
EVALUATIONS = ("reconstruction", "parzen", "ais", "samples")
#: ``--prior``: as ``vpf sample --prior`` (:data:`vpf_spiking.generation.PRIORS`).
PRIORS = ("r", "p")
#: The data sets with labels, on which :mod:`vpf_spiking.evaluation.sample_quality` trains its classifier.
LABELLED = ("mnist", "fashion-mnist")

DESCRIPTION = """Evaluate a saved model on the test set of a data set (spec section 7).
With none of --reconstruction, --parzen, --ais, --samples, all of them run (--samples only for
mnist and fashion-mnist; it then scores Parzen's confabulations, so it costs only the scoring
once its classifier is cached: about a minute or two of training on first use).

  reconstruction: k random rows / columns of every test image corrupted, Gibbs chains with the
                  intact pixels clamped, L2 error of the visible probabilities (mean and SEs)
  parzen:         Gaussian Parzen window on confabulations, sigma chosen on the last 1,000
                  training images, mean log-density of the greyscale test images
  ais:            annealed importance sampling of log Z (RBMs), test log-likelihood in nats
  samples:        sample quality of confabulations judged by a classifier trained on the
                  labelled training images (mnist, fashion-mnist; trained once, then cached):
                  blank fraction, confident share, class coverage, class entropy (nats) and
                  the Frechet distance to the test images in the classifier's feature space"""

EXAMPLES = """examples:
  vpf evaluate runs/train-rbm-mnist/model.npz --ais
  vpf evaluate model.npz --reconstruction --patterns rows:8 columns:8 --seeds 0 1 --out eval/
  vpf evaluate model.npz --data fashion-mnist --parzen --n-samples 2000
  vpf evaluate model.npz --samples --n-samples 1000 --prior p --out eval/"""


def add_parser(subparsers):
    # argparse's own raw formatter (not .common.formatter): keeps this help's layout as it was
    p = subparsers.add_parser("evaluate", help="reconstruction / Parzen / AIS / sample-quality evaluation of a model",
                              description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="a model file written by 'vpf train' (.npz)")
    p.add_argument("--reconstruction", action="store_true", help="corrupted-image reconstruction")
    p.add_argument("--parzen", action="store_true", help="Parzen-window log-likelihood")
    p.add_argument("--ais", action="store_true", help="AIS log Z and test log-likelihood")
    p.add_argument("--samples", action="store_true",
                   help="sample quality of confabulations (mnist, fashion-mnist): blank, confident, classes, "
                        "class entropy, Frechet distance")
    p.add_argument("--data", default="mnist", metavar="mnist|fashion-mnist|FILE", help="data set (default mnist)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/ and fashion-mnist/")
    p.add_argument("--validation", type=int, default=1000, help="last N training images for Parzen sigma (1000)")
    p.add_argument("--n-test", type=int, help="use only the first N test images")
    p.add_argument("--out", metavar="DIR", help="also write the tables (CSV + Markdown) here")
    g = p.add_argument_group("reconstruction")
    g.add_argument("--patterns", nargs="+", default=None,
                   metavar="rows:K|columns:K", help="corruption patterns (default rows and columns, K = 4 8 12)")
    g.add_argument("--steps", type=int, default=25, help="Gibbs steps per reconstruction (25)")
    g.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="independent seeds (0 1 2)")
    g = p.add_argument_group("confabulations (Parzen and sample quality; as 'vpf sample')")
    g.add_argument("--n-samples", type=int, default=10000, help="confabulations (10000)")
    g.add_argument("--sample-steps", type=int, default=None, metavar="K",
                   help="Gibbs steps per confabulation (default: as vpf sample, by the model's training method, else 100)")
    g.add_argument("--prior", type=str.lower, choices=PRIORS, default="p",
                   help="prior of the top layer: r (Bernoulli 1/2) or p (mean bottom-up activation over the "
                        "training split of --data; default)")
    g = p.add_argument_group("AIS")
    g.add_argument("--n-betas", type=int, default=14500, help="inverse temperatures (14500)")
    g.add_argument("--n-runs", type=int, default=100, help="parallel AIS runs (100)")
    g.add_argument("--ais-seed", type=int, default=0)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import pandas as pd

    from ..evaluation.diagnostics import write_table
    from ..evaluation.parzen import DEFAULT_SIGMAS
    from ..evaluation.reconstruction import DEFAULT_PATTERNS, parse_patterns
    from ..model import BoltzmannMachine
    from ..protocols.ais import run_ais
    from ..protocols.inputs import load_data, square_shape
    from ..protocols.parzen import run_parzen
    from ..protocols.reconstruction import run_reconstruction

    for name in ("validation", "n_test", "steps", "n_samples", "sample_steps", "n_betas", "n_runs"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
    labelled = str(args.data).strip().lower().replace("_", "-")
    labelled = labelled if labelled in LABELLED else None
    why_not = None if labelled else (f"--samples needs --data mnist or fashion-mnist (its classifier is trained on "
                                     f"their labelled training images); {args.data} has no classifier")
    if why_not is None and importlib.util.find_spec("sklearn") is None:
        why_not = "--samples needs scikit-learn (pip install scikit-learn, or the 'test' extra)"
    todo = [k for k in EVALUATIONS if getattr(args, k)]
    if not todo:
        todo = list(EVALUATIONS)
        if why_not:
            todo.remove("samples")
            print(f"sample quality skipped: {why_not.removeprefix('--samples ')}")
    elif "samples" in todo and why_not:
        raise ConfigError(why_not)
    model = BoltzmannMachine.load(args.model)
    if args.sample_steps is None:
        from ..generation import recommended_steps

        args.sample_steps, why = recommended_steps(model)
        if {"parzen", "samples"} & set(todo):
            print(f"K = {args.sample_steps} Gibbs steps per confabulation: {why}")
    if "ais" in todo and not model.is_rbm:
        raise ConfigError(f"{args.model}: --ais is implemented for RBMs; this model has sizes {list(model.sizes)}")
    ds = {"dataset": args.data, "data_dir": args.data_dir, "validation": args.validation, "n_train": None,
          "n_test": args.n_test}
    data = load_data(ds, greyscale="parzen" in todo)
    if data["test"].shape[1] != model.sizes[0]:
        raise ConfigError(f"{args.model} has {model.sizes[0]} visible units, {args.data} images have "
                          f"{data['test'].shape[1]} pixels")
    out = Path(args.out) if args.out else None
    times = {}
    if "reconstruction" in todo:
        t0 = time.perf_counter()
        patterns = args.patterns or [f"{a}:{k}" for a, k in DEFAULT_PATTERNS]
        s = {"corruptions": parse_patterns(patterns), "steps": args.steps, "seeds": tuple(args.seeds),
             "fill": "noise"}
        tab = run_reconstruction(model, data["test"], s, image_shape=square_shape(model.sizes[0], "--data"))
        times["reconstruction"] = time.perf_counter() - t0
        print(tab[["corruption", "mean_error", "se_images", "se_seeds", "n_images", "n_seeds"]].to_string(index=False))
        if out:
            write_table(tab, out / "reconstruction")
    samples = None
    if "parzen" in todo:
        t0 = time.perf_counter()
        s = {"n_samples": args.n_samples, "steps": args.sample_steps, "prior": args.prior, "sigmas": DEFAULT_SIGMAS}
        res, samples = run_parzen(model, data["train"], data["valid_grey"], data["test_grey"], s)
        times["parzen"] = time.perf_counter() - t0
        val = res.pop("validation")
        print(f"Parzen log-likelihood: {res['mean']:.2f} ± {res['se']:.2f} nats (sigma {res['sigma']:.3g}, "
              f"{res['n_samples']} samples, {res['n_test']} test images)")
        if out:
            write_table(val, out / "parzen_validation")
            write_table(pd.DataFrame([res]), out / "parzen")
    if "ais" in todo:
        t0 = time.perf_counter()
        s = {"n_betas": args.n_betas, "n_runs": args.n_runs, "schedule": "sm", "seed": args.ais_seed}
        res = run_ais(model, data["train"], data["test"], s)
        times["ais"] = time.perf_counter() - t0
        print(f"AIS: log Z = {res['log_z']:.3f} ± {res['log_z_se']:.3f}; test log-likelihood "
              f"{res['test_ll']:.2f} ± {res['ll_se']:.2f} nats ({res['n_runs']} runs, {res['n_betas']} betas)")
        if out:
            write_table(pd.DataFrame([res]), out / "ais")
    if "samples" in todo:
        t0 = time.perf_counter()
        res = run_sample_quality(model, data, labelled, args, samples)
        times["samples"] = time.perf_counter() - t0
        print(f"sample quality: blank {res['blank']:.3f}, confident {res['confident']:.3f}, classes {res['classes']}, "
              f"class entropy {res['class_entropy']:.3f} nats, Frechet distance {res['frechet']:.2f} "
              f"({res['n_samples']} samples, prior {res['prior'].upper()}, K={res['steps']}, "
              f"{res['n_reference']} test images)")
        if out:
            write_table(pd.DataFrame([res]), out / "sample_quality")
    print(" ".join(f"{k}_s: {v:.1f}" for k, v in times.items()))
    if out:
        (out / "timings.json").write_text(json.dumps(times, indent=1))
    return 0


def run_sample_quality(model, data, dataset, args, samples=None) -> dict:
    """Sample-quality scores of ``args.n_samples`` confabulations (``samples``: Parzen's, when drawn).

    The classifier is :class:`~vpf_spiking.evaluation.sample_quality.SampleClassifier` trained on
    the training split of ``dataset`` (cached); the reference of the Fréchet distance is the
    (binary) test images.
    """
    from ..evaluation.sample_quality import SampleClassifier, sample_quality
    from ..generation import confabulate
    from ..protocols.inputs import default_data_dir

    t0 = time.perf_counter()
    if samples is None:
        # the same draw as Parzen's (run_parzen: seed 0, the training images for the P prior)
        samples = confabulate(model, args.n_samples, prior=args.prior, steps=args.sample_steps, rng=0,
                              data=data["train"])
    t1 = time.perf_counter()
    clf = SampleClassifier.from_dataset(dataset, data_dir=default_data_dir(args.data_dir))
    t2 = time.perf_counter()
    q = sample_quality(samples, clf, reference=data["test"])
    return {**q, "n_samples": len(samples), "prior": args.prior, "steps": args.sample_steps,
            "n_reference": len(data["test"]), "dataset": dataset, "sampling_s": t1 - t0,
            "classifier_s": t2 - t1, "classifier_cached": clf.from_cache, "scoring_s": time.perf_counter() - t2}
