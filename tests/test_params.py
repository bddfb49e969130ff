"""Trainer options declared once: defaults, protocol validation, the argparse round trip, messages.

The declaration and its checks live in :mod:`vpf_spiking.trainers.params`; the flags built from it
in :mod:`vpf_spiking.cli.options` (argparse code stays in the CLI package).
"""

import argparse

import pytest

from vpf_spiking.cli import options
from vpf_spiking.errors import ConfigError
from vpf_spiking.trainers import CDTrainer, VPFTrainer, make_trainer, params


def parser(methods=params.METHODS, **kw):
    p = argparse.ArgumentParser(prog="vpf train", exit_on_error=False)
    options.add_arguments(p.add_argument_group("training"), methods, **kw)
    return p


def from_cli(argv, methods=params.METHODS, **kw):
    return options.from_args(parser(methods).parse_args(argv), methods, **kw)


# ---------------------------------------------------------------------------- defaults
def test_defaults_are_the_papers_and_follow_the_method():
    d = params.defaults("vpf")
    assert d == {"method": "vpf", "epochs": 10, "batch_size": 100, "learning_rate": 1e-3, "optimizer": "adam",
                 "momentum": 0.0, "weight_decay": 1e-4, "e_step_sweeps": 1, "flow": "joint", "flips": 64,
                 "visible_bias_init": "marginals", "seed": 0, "progress": True}
    assert "k" in params.defaults("pcd") and "e_step_sweeps" not in params.defaults("cd")
    assert params.resume_keys("cd") == ["method", "batch_size", "learning_rate", "optimizer", "momentum",
                                        "weight_decay", "k", "seed"]


@pytest.mark.parametrize("method", params.METHODS)
def test_trainers_record_every_default(method):
    assert make_trainer(method).config() == params.defaults(method)


def test_every_option_reaches_the_trainer_as_an_attribute():
    tr = make_trainer("pcd", epochs=3, batch_size=7, learning_rate=0.5, optimizer="SGD", momentum=0.25,
                      weight_decay=0.0, k=4, visible_bias_init="zero", seed=9, progress=False)
    assert (tr.epochs, tr.batch_size, tr.learning_rate, tr.optimizer, tr.momentum, tr.weight_decay, tr.k,
            tr.visible_bias_init, tr.seed, tr.progress) == (3, 7, 0.5, "sgd", 0.25, 0.0, 4, "zero", 9, False)
    assert isinstance(tr, CDTrainer) and tr.persistent and tr.method == "pcd"
    assert isinstance(VPFTrainer(learning_rate=1), VPFTrainer) and VPFTrainer(learning_rate=1).learning_rate == 1.0


def test_docstrings_come_from_the_declaration():
    for o in params.options("vpf"):
        assert f"{o.name} : {o.kind.__name__}, default {o.default!r}" in VPFTrainer.__doc__
    assert "k : int, default 1" in CDTrainer.__doc__


# ---------------------------------------------------------------------------- protocol tables
def test_validate_fills_defaults_and_converts():
    got = params.validate({"method": "pcd", "k": 3, "learning_rate": 1}, "p.toml")
    assert got == {**params.defaults("pcd"), "k": 3, "learning_rate": 1.0}
    assert isinstance(got["learning_rate"], float)
    assert params.validate({}, "p.toml") == params.defaults("vpf")


@pytest.mark.parametrize("table, message", [
    ({"epochz": 3}, r"p\.toml: unknown key\(s\) \['epochz'\] in \[training\] \(valid: batch_size, e_step_sweeps, "
                    r"epochs, flips, flow, k, learning_rate, method, momentum, optimizer, progress, seed, visible_bias_init, "
                    r"weight_decay\)"),
    ({"method": "gd"}, r"p\.toml: training\.method must be one of vpf, cd, pcd, got 'gd'"),
    ({"epochs": 0}, r"p\.toml: training\.epochs must be >= 1, got 0"),
    ({"epochs": "three"}, r"training\.epochs must be an integer, got 'three'"),
    ({"epochs": True}, r"training\.epochs must be an integer, got True"),
    ({"learning_rate": -1.0}, r"training\.learning_rate must be positive, got -1\.0"),
    ({"learning_rate": float("inf")}, r"training\.learning_rate must be a finite number, got inf"),
    ({"weight_decay": -1e-3}, r"training\.weight_decay must be >= 0, got -0\.001"),
    ({"momentum": 1.0, "optimizer": "sgd"}, r"training\.momentum must be in \[0, 1\), got 1\.0"),
    ({"momentum": 0.5}, r"training\.momentum applies to optimizer sgd only .* with optimizer 'adam'"),
    ({"k": 3}, r"training\.k applies to method cd or pcd, not vpf"),
    ({"method": "cd", "e_step_sweeps": 2}, r"training\.e_step_sweeps applies to method vpf, not cd"),
    ({"progress": "no"}, r"training\.progress must be true or false, got 'no'"),
    ({"visible_bias_init": 0}, r"training\.visible_bias_init must be a string, got 0"),
])
def test_validate_messages_name_file_key_and_value(table, message):
    with pytest.raises(ConfigError, match=message):
        params.validate(table, "p.toml")


def test_validate_for_tables_shared_by_several_methods():
    seed = params.Option("network_seed", int, 0, "seed of the initial weights", low=0)
    got = params.validate({"epochs": 2, "k": 5, "network_seed": 4}, "x.toml", method_key=False,
                          defaults={"epochs": 5, "learning_rate": 0.01}, extra=[seed])
    assert "method" not in got and got["k"] == 5 and got["epochs"] == 2 and got["learning_rate"] == 0.01
    assert got["network_seed"] == 4 and "e_step_sweeps" in got
    assert params.trainer_kwargs(got, "vpf") == {k: v for k, v in got.items() if k not in ("k", "network_seed")}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['method'\]"):
        params.validate({"method": "cd"}, "x.toml", method_key=False)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['k'\].*valid: .*network_seed"):
        params.validate({"k": 2}, "d.toml", methods=("vpf",), method_key=False, extra=[seed])
    with pytest.raises(ConfigError, match=r"x\.toml: training\.network_seed must be >= 0, got -1"):
        params.validate({"network_seed": -1}, "x.toml", extra=[seed])
    assert params.validate({}, "d.toml", methods=("cd", "pcd"))["method"] == "cd"
    with pytest.raises(ConfigError, match=r"\[training\] must be a table"):
        params.validate(3, "x.toml")


# ---------------------------------------------------------------------------- command line
def test_argparse_round_trip_gives_every_option():
    got = from_cli(["--method", "pcd", "--k", "3", "--lr", "0.01", "--batch-size", "20", "--optimizer", "sgd",
                    "--momentum", "0.5", "--weight-decay", "0", "--visible-bias-init", "zero", "--seed", "4",
                    "--epochs", "2", "--no-progress"])
    assert got == {"method": "pcd", "epochs": 2, "batch_size": 20, "learning_rate": 0.01, "optimizer": "sgd",
                   "momentum": 0.5, "weight_decay": 0.0, "k": 3, "visible_bias_init": "zero", "seed": 4,
                   "progress": False}
    assert from_cli([]) == params.defaults("vpf")
    assert from_cli(["--learning-rate", "0.2"])["learning_rate"] == 0.2
    # the settings build the same trainer as the keywords
    tr = make_trainer(got["method"], **params.trainer_kwargs(got, got["method"]))
    assert tr.config() == got


def test_given_args_tells_flags_from_defaults():
    args = parser().parse_args(["--k", "2", "--no-progress"])
    assert options.given_args(args) == {"k": 2, "progress": False}
    spiking_refuses = [n for n in options.given_args(args) if not params.OPTIONS[n].spiking]
    assert spiking_refuses == ["k"]


@pytest.mark.parametrize("argv, message", [
    (["--method", "sgd"], r"--method must be one of vpf, cd, pcd, got 'sgd'"),
    (["--optimizer", "rmsprop"], r"--optimizer must be one of adam, sgd, got 'rmsprop'"),
    (["--k", "2"], r"--k applies to --method cd or pcd, not vpf"),
    (["--method", "cd", "--e-step-sweeps", "2"], r"--e-step-sweeps applies to --method vpf, not cd"),
    (["--epochs", "0"], r"--epochs must be >= 1, got 0"),
    (["--lr", "-1"], r"--lr must be positive, got -1\.0"),
    (["--momentum", "0.9"], r"--momentum applies to optimizer sgd only"),
])
def test_cli_messages_name_the_flag(argv, message):
    with pytest.raises(ConfigError, match=message):
        from_cli(argv)


def test_add_arguments_subsets_and_help():
    p = parser(("vpf",), include=("epochs", "learning_rate", "seed"), defaults={"epochs": 5})
    text = p.format_help()
    assert "--epochs" in text and "(default: 5)" in text and "--lr" in text and "--k" not in text
    assert "--method" not in text
    got = options.from_args(p.parse_args([]), ("vpf",), defaults={"epochs": 5})
    assert got["method"] == "vpf" and got["epochs"] == 5
    full = parser().format_help()
    assert "cd/pcd: Gibbs steps per update (default: 1)" in full
    assert "(default: 0.0001)" in full and "--no-progress" in full
    with pytest.raises(ConfigError, match="unknown option"):
        params.resolve("vpf", {"lr": 1.0})


def test_option_constraint_words():
    o = params.OPTIONS
    assert [o[n].constraint() for n in ("epochs", "learning_rate", "weight_decay", "momentum", "optimizer")] == \
        [">= 1", "positive", ">= 0", "in [0, 1)", "one of adam, sgd"]


def test_argument_specs_are_plain_data():
    specs = dict((flags[0], kw) for flags, kw in options.argument_specs(("cd", "pcd")))
    assert specs["--k"] == {"dest": "k", "default": None, "type": int, "metavar": None,
                            "help": "Gibbs steps per update (default: 1)"}
    assert "--e-step-sweeps" not in specs and specs["--no-progress"]["action"] == "store_false"
    assert specs["--method"]["metavar"] == "cd|pcd"


def test_new_options_appear_as_flags_and_keys():
    # flow and flips are declared once; the flag and the [training] key follow
    got = from_cli(["--flow", "rao-blackwell", "--flips", "0"])
    assert got["flow"] == "rao-blackwell" and got["flips"] == 0
    assert params.validate({"flow": "MARGINAL", "flips": 8}, "p.toml")["flow"] == "marginal"
    with pytest.raises(ConfigError, match=r"^--flow must be one of joint, rao-blackwell, marginal, got 'x'$"):
        from_cli(["--flow", "x"])
    with pytest.raises(ConfigError, match=r"^--flow applies to --method vpf, not cd$"):
        from_cli(["--method", "cd", "--flow", "joint"])
    with pytest.raises(ConfigError, match=r"^p\.toml: training\.flips must be >= 0, got -2$"):
        params.validate({"flips": -2}, "p.toml")


def test_help_overrides_and_flag_names():
    text = " ".join(parser(("vpf",), include=("seed",), helps={"seed": "seed of everything"}).format_help().split())
    assert "seed of everything (default: 0)" in text
    assert options.flag("learning_rate") == "--lr" and options.flag("progress") == "--no-progress"
    assert options.flag("e_step_sweeps") == "--e-step-sweeps"


def test_params_holds_no_command_line_code():
    # argparse lives in vpf_spiking.cli (tests/test_architecture.py checks the imports too)
    for name in ("argument_specs", "add_arguments", "from_args", "given_args"):
        assert not hasattr(params, name), name
