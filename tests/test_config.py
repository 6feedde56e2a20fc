"""Strict settings at every Hydra entry point: unknown keys, wrong types, overrides Hydra cannot
apply. Each ends in exactly one `error:` line and exit code 2 (the CLIs run in-process here,
plus one subprocess for the real exit status)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from ojrs_jax.app.hydra import check_settings, hydra_cli
from ojrs_jax.system.scenario import ConfigError

# Hydra's logging setup would hold on to pytest's captured stderr: leave logging alone
IN_PROCESS = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
SCALES = "large, medium, paper_m1, paper_m2, paper_m3, paper_m4, paper_m5, tiny"
CASES = [
    ("train", "foo=1", "unknown setting 'foo'"),
    ("train", "+foo=1", "unknown setting 'foo'"),
    ("train", "train.gama=1", "unknown setting 'train.gama'"),
    ("train", "+train.gama=1", "unknown setting 'train.gama'"),
    ("train", "train.epochs=abc", "train.epochs must be an integer, got 'abc'"),
    ("train", "scale.n_ue=3.5", "scale.n_ue must be an integer, got 3.5"),
    ("train", "train.lam=-1", "train.lam must be a finite positive number, got -1"),
    ("train", "train.adaptive=2", "train.adaptive must be true or false, got 2"),
    ("train", "resume=maybe", "resume must be true or false, got 'maybe'"),
    ("train", "eval.time_limit=-5", "eval.time_limit must be a finite positive number, got -5"),
    ("train", "scale=nope", f"no option 'nope' in config group 'scale' (available: {SCALES})"),
    (
        "train",
        "train.epochs=[1",
        "cannot parse override 'train.epochs=[1': no viable alternative at input '[1'",
    ),
    ("baselines", "foo=1", "unknown setting 'foo'"),
    ("baselines", "+p2.solver=x", "unknown setting 'p2.solver'"),
    ("baselines", "seed=abc", "seed must be an integer, got 'abc'"),
    ("baselines", "exact.time_limit=abc", "exact.time_limit must be a number, got 'abc'"),
    ("baselines", "exact.time_limit=0", "exact.time_limit must be a finite positive number, got 0"),
    ("fig7", "exact=maybe", "exact must be true or false, got 'maybe'"),
    ("fig7", "+asa.kk=3", "unknown setting 'asa.kk'"),
    ("sae", "compare=ae", "compare must be a list, got 'ae'"),
    ("sae", "incremental=5", "incremental is a group of settings, got 5"),
    ("sae", "+sae.gamma3=1", "unknown setting 'sae.gamma3'"),
]


@pytest.mark.parametrize("cli,override,message", CASES)
def test_cli_rejects_bad_setting(cli, override, message, tmp_path, monkeypatch, capsys):
    main = importlib.import_module(f"ojrs_jax.cli.{cli}").main
    monkeypatch.setattr(sys, "argv", [cli, override, *IN_PROCESS, f"hydra.run.dir={tmp_path}"])
    before = os.environ.get("HYDRA_FULL_ERROR")
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {message}"]
    assert os.environ.get("HYDRA_FULL_ERROR") == before


def test_subprocess_exit_code_and_single_line(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "ojrs_jax.cli.train", "train.gama=1", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["error: unknown setting 'train.gama'"]
    assert p.stdout == ""


def test_task_errors_keep_their_traceback(tmp_path, monkeypatch):
    """Only configuration problems become exit 2; a bug in the task still raises."""
    seen = []

    @hydra_cli("fig7")
    def task(cfg):
        seen.append(cfg.draws)
        raise RuntimeError("a bug, not a bad input")

    monkeypatch.setattr(sys, "argv", ["t", "draws=7", *IN_PROCESS, f"hydra.run.dir={tmp_path}"])
    with pytest.raises(RuntimeError, match="a bug"):
        task()
    assert seen == [7]


DEFAULTS = {
    "seed": 0,
    "flag": True,
    "rate": 0.5,
    "name": "paper",
    "train": {"hidden": [120, 80], "epochs": 10},
    "maybe": None,
}


@pytest.mark.parametrize(
    "cfg",
    [
        {"rate": 2},  # an int is a number
        {"train": {"hidden": "auto"}},  # train.hidden takes "auto"
        {"train": {"hidden": [1, 2, 3]}},
        {"maybe": "anything"},
        DEFAULTS,
    ],
)
def test_check_settings_accepts(cfg):
    check_settings(cfg, DEFAULTS)


@pytest.mark.parametrize(
    "cfg,message",
    [
        ({"seed": True}, "seed must be an integer, got True"),
        ({"seed": 1.0}, "seed must be an integer, got 1.0"),
        ({"seed": None}, "seed must be an integer, got None"),
        ({"flag": 1}, "flag must be true or false, got 1"),
        ({"rate": "fast"}, "rate must be a number, got 'fast'"),
        ({"rate": False}, "rate must be a number, got False"),
        ({"name": 3}, "name must be a string, got 3"),
        ({"name": {"a": 1}}, "name must be a string, got {'a': 1}"),
        ({"train": 3}, "train is a group of settings, got 3"),
        ({"train": {"epochs": "x"}}, "train.epochs must be an integer, got 'x'"),
        ({"train": {"epoch": 3}}, "unknown setting 'train.epoch'"),
        ({"other": 1}, "unknown setting 'other'"),
    ],
)
def test_check_settings_rejects(cfg, message):
    with pytest.raises(ConfigError) as e:
        check_settings(cfg, DEFAULTS)
    assert str(e.value) == message


def test_renamed_draw_counts_map_to_their_new_names(capsys):
    from ojrs_jax.app.compose import compose_config
    from ojrs_jax.core.settings import rename_overrides, rename_settings

    got = rename_overrides(
        [
            "eval.channels=7",
            "+sae_pretrain.channels=9",
            "~eval.channels",
            "train.epochs=3",
            "seed=1",
        ],
        "train",
    )
    assert got == [
        "eval.draws=7",
        "+sae_pretrain.draws=9",
        "~eval.draws",
        "train.epochs=3",
        "seed=1",
    ]
    assert capsys.readouterr().err.count("warning: setting 'eval.channels' is now called") == 2
    assert rename_overrides(["epochs=5"], "train") == ["epochs=5"]  # only baselines renamed it
    c = compose_config(["eval.channels=7"])
    assert c["eval"]["draws"] == 7 and "channels" not in c["eval"]
    old = {"seed": 1, "eval": {"channels": 3, "exact": True}, "sae_pretrain": {"channels": 5}}
    new = rename_settings(old, "train")
    assert new == {"seed": 1, "eval": {"draws": 3, "exact": True}, "sae_pretrain": {"draws": 5}}
    assert old["eval"] == {"channels": 3, "exact": True}  # the input is left alone
    both = rename_settings({"eval": {"channels": 3, "draws": 4}}, "train")
    assert both == {"eval": {"draws": 4}}  # the new name wins


def test_study_settings_are_typed_and_strict():
    """The experiments take typed settings; a dict with a misspelt key fails by name."""
    from ojrs_jax.app.compose import compose_config
    from ojrs_jax.experiments.sae_study import parse, settings

    sys_cfg, model, run = parse(compose_config(["train_channels=300"], "sae_train"))
    assert run.train_draws == 300 and run.test_draws == 2000 and model.variant == "2r_sae"
    assert sys_cfg.n_ue == 30
    with pytest.raises(ConfigError, match="unknown setting 'model_seed'"):
        settings({"model_seed": 2})
