"""System model: layouts, channel statistics, rates, scenario files and config validation."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_model import RefModel

from ojrs_jax.system.scenario import (
    PAPER_LAYOUTS,
    ConfigError,
    SystemConfig,
    load_scenario,
    make_scenario,
    path_gain,
    rate,
    sample_channel,
    sample_channels,
    save_scenario,
)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_paper_layouts_and_ue_area(m):
    scn = make_scenario(SystemConfig(n_mec=m))
    np.testing.assert_allclose(np.asarray(scn.mec_pos), np.array(PAPER_LAYOUTS[m]))
    ue = np.asarray(scn.ue_pos)
    assert ue.shape == (30, 2) and ue.min() >= 0 and ue.max() <= 50


@pytest.mark.parametrize("layout,m", [("grid", 7), ("grid", 20), ("random", 9)])
def test_generated_layouts_inside_area(layout, m):
    scn = make_scenario(SystemConfig(n_ue=50, n_mec=m, area=200.0, layout=layout))
    mec = np.asarray(scn.mec_pos)
    assert mec.shape == (m, 2) and mec.min() >= 0 and mec.max() <= 200
    assert len({tuple(p) for p in mec.round(6)}) == m  # distinct sites


def test_path_gain_matches_reference(paper_m2):
    np.testing.assert_allclose(
        np.asarray(path_gain(paper_m2)), RefModel(paper_m2).path_gain(), rtol=1e-5
    )


def test_distance_clipped_at_one_metre():
    scn = make_scenario(SystemConfig(n_ue=2, n_mec=1))
    scn = scn.replace(ue_pos=jnp.array([[25.0, 25.0], [25.3, 25.0]]))  # on top of the MEC
    np.testing.assert_allclose(np.asarray(path_gain(scn)), float(scn.beta0), rtol=1e-6)


def test_channel_statistics_rayleigh(paper_m2):
    """h / path gain must be Exp(1): mean 1, variance 1, P(x > 1) = e^-1, independent entries."""
    e = 4000
    h = np.asarray(sample_channels(jax.random.key(0), paper_m2, e), np.float64)
    x = h / RefModel(paper_m2).path_gain()[None]
    assert h.shape == (e, 30, 2) and np.all(h > 0)
    n = x.size  # 240k samples: standard errors about 0.002 (mean) and 0.005 (variance)
    assert abs(x.mean() - 1) < 5 * 1 / math.sqrt(n)
    assert abs(x.var() - 1) < 5 * math.sqrt(8 / n)
    assert abs((x > 1).mean() - math.exp(-1)) < 5 * math.sqrt(0.25 / n)
    # entries are independent across UEs, MECs and epochs
    flat = x.reshape(e, -1)
    corr = np.corrcoef(flat[:, 0], flat[:, 1])[0, 1]
    assert abs(corr) < 5 / math.sqrt(e)
    assert abs(np.corrcoef(flat[:-1, 0], flat[1:, 0])[0, 1]) < 5 / math.sqrt(e)


def test_channel_sampler_is_pure(paper_m2):
    k = jax.random.key(3)
    np.testing.assert_array_equal(sample_channel(k, paper_m2), sample_channel(k, paper_m2))
    assert not np.allclose(sample_channel(jax.random.key(4), paper_m2), sample_channel(k, paper_m2))


def test_rate_matches_reference(paper_m2, channels_m2):
    ref = RefModel(paper_m2)
    h = np.asarray(channels_m2[0], np.float64)
    want = np.vectorize(ref.rate)(h)
    np.testing.assert_allclose(
        np.asarray(rate(paper_m2, channels_m2[0], paper_m2.p_max)), want, rtol=1e-5
    )


def test_scenario_file_roundtrip(tmp_path, hetero_scn):
    path = tmp_path / "scn.json"
    save_scenario(hetero_scn, path)
    d = json.loads(path.read_text())
    assert d["format"] == "ojrs-scenario" and len(d["ue_pos"]) == hetero_scn.n_ue
    back = load_scenario(path)
    for name in hetero_scn.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(back, name), getattr(hetero_scn, name))


def test_scenario_file_errors(tmp_path, paper_m2):
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.json")
    save_scenario(paper_m2, tmp_path / "s.json")
    d = json.loads((tmp_path / "s.json").read_text())
    d["f_mec"] = [-1.0, 5e10]
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="f_mec"):
        load_scenario(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "field,value",
    [
        ("n_ue", 0),
        ("n_mec", -1),
        ("p_max", -1.0),
        ("bandwidth", float("nan")),
        ("noise", 0.0),
        ("data_bits", float("inf")),
        ("f_mec", -5e9),
        ("cycles", "many"),
        ("layout", "hexagon"),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError) as e:
        SystemConfig(**{field: value})
    assert field in str(e.value) and "\n" not in str(e.value)


def test_config_paper_layout_needs_m_up_to_5():
    with pytest.raises(ConfigError, match="n_mec"):
        SystemConfig(n_mec=6, layout="paper")
    with pytest.raises(ConfigError, match="unknown system setting 'bogus'"):
        SystemConfig.from_mapping({"bogus": 1})
