"""One source of defaults: each config group's default option equals its typed dataclass's defaults.

A value written twice drifts (SystemConfig.noise once said 3e-7 while conf/system said 2e-7), so
every default option of `conf/` is composed with Hydra and compared field by field with the
dataclass built with no arguments.
"""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_module

from ojrs_jax.agent.config import TrainConfig
from ojrs_jax.agent.replay import PERParams
from ojrs_jax.app.hydra import to_container
from ojrs_jax.sae.model import SAEConfig
from ojrs_jax.search.asa import ASAConfig, ASAParams, asa_from_mapping
from ojrs_jax.search.pso import PSOConfig, PSOParams, pso_from_mapping
from ojrs_jax.system.scenario import SystemConfig

GROUP_FIELDS = {"asa", "asa_params", "per", "replay", "explore_eps"}


@pytest.fixture(scope="module")
def composed():
    """The `train` app with its default choices, and with the paper's train preset."""
    with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
        default = to_container(compose("train"))
        paper = to_container(compose("train", ["train=paper"]))
        baselines = to_container(compose("baselines"))
    return default, paper, baselines


def same(obj, mapping: dict, skip=()) -> None:
    for f in dataclasses.fields(obj):
        if f.name in skip or f.name not in mapping:
            continue
        want, got = getattr(obj, f.name), mapping[f.name]
        if isinstance(want, tuple):
            got = tuple(got)
        assert got == want, f"{type(obj).__name__}.{f.name}: YAML {got!r}, dataclass {want!r}"


def test_system_and_scale(composed):
    default, _, _ = composed
    merged = {**default["system"], **default["scale"]}
    assert set(merged) == {f.name for f in dataclasses.fields(SystemConfig)}
    assert SystemConfig.from_mapping(merged) == SystemConfig()


def test_sae(composed):
    assert SAEConfig.from_mapping(composed[0]["sae"]) == SAEConfig()


def test_asa(composed):
    cfg, par = asa_from_mapping(composed[0]["asa"])
    assert cfg == ASAConfig()
    same(ASAParams(), dataclasses.asdict(par))


def test_replay(composed):
    rp = dict(composed[0]["replay"])
    assert rp.pop("kind") == TrainConfig().replay
    assert rp.pop("explore_eps") == TrainConfig().explore_eps
    same(PERParams(), rp)
    assert set(rp) == {f.name for f in dataclasses.fields(PERParams)}


def test_train_paper_preset(composed):
    """`train=paper` is the dataclass default (the other presets override it)."""
    t = composed[1]["train"]
    assert set(t) == {f.name for f in dataclasses.fields(TrainConfig)} - GROUP_FIELDS
    same(TrainConfig(), t, skip=GROUP_FIELDS)


def test_baselines(composed):
    """conf/baselines.yaml as a whole (scale, system, searches and its own keys)."""
    from ojrs_jax.experiments.baselines import BaselinesConfig

    assert BaselinesConfig.from_mapping(composed[2]) == BaselinesConfig()


def test_fig7():
    from ojrs_jax.experiments.fig7 import Fig7Config

    with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
        c = to_container(compose("fig7"))
    assert Fig7Config.from_mapping(c) == Fig7Config()


def test_train_job_options(composed):
    """`eval`, `tensorboard` and `progress` of conf/train.yaml (the paper preset keeps them)."""
    from ojrs_jax.run.train import RunOptions

    assert RunOptions.from_mapping(composed[1]) == RunOptions()
    assert RunOptions.from_mapping(composed[0]).draws == 500  # train=main certifies 500 draws


def test_reproduce_settings():
    """The `reproduce` group with the default experiment (table2), and a misspelt key."""
    from ojrs_jax.core.settings import ConfigError
    from ojrs_jax.experiments.reproduce import ReproduceSettings

    with initialize_config_module("ojrs_jax.conf", version_base="1.3"):
        c = to_container(compose("reproduce"))
    assert ReproduceSettings.from_mapping(c) == ReproduceSettings(name="table2")
    with pytest.raises(ConfigError, match="unknown reproduce setting 'seed'"):
        ReproduceSettings.from_mapping({"reproduce": {"seed": 3}})
    old = ReproduceSettings.from_mapping({"reproduce": {"eval_channels": 7}})
    assert old.eval_draws == 7  # the name before `eval_draws`


def test_pso(composed):
    cfg, par = pso_from_mapping(composed[2]["pso"])
    assert cfg == PSOConfig()
    same(PSOParams(), dataclasses.asdict(par))
