"""Benchmark records (benchmarks/record.py) and the published figures (benchmarks/check_figures.py).

No time is asserted: the tests check that a record holds the command, machine, date, commit, load
and the figures the script printed, and that every performance figure of README.md and of the
documentation (docs/**/*.md) is found in the record it names.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
HELPERS = {"record.py", "check_figures.py", "numpy_ref.py"}  # not benchmarks themselves


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def check_metadata(rec: dict) -> None:
    for k in (
        "command",
        "argv",
        "cwd",
        "env",
        "script",
        "date_utc",
        "date_utc_end",
        "wall_s",
        "git",
        "machine",
        "load",
        "figures",
    ):
        assert k in rec, k
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", rec["date_utc"])
    git = rec["git"]
    assert git["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", git["commit"])
    assert git["dirty"] in (True, False, None)
    m = rec["machine"]
    for k in ("platform", "cpu_model", "cores", "jax", "jaxlib", "device_kind", "xla_flags"):
        assert k in m, k
    load_ = rec["load"]
    assert len(load_["avg_1_5_15_start"]) == 3 and len(load_["avg_1_5_15_end"]) == 3
    peak = max(load_["avg_1_5_15_start"][0], load_["avg_1_5_15_end"][0])
    assert load_["under_load"] == (peak > load_["threshold_1min"])
    assert load_["label"].startswith("under load" if load_["under_load"] else "idle")


@pytest.mark.parametrize("over", [-0.004, 0.004, 0.006])
def test_load_verdict_agrees_with_the_stored_load(monkeypatch, over):
    """A load a hair above the threshold is stored rounded; the verdict follows what is stored."""
    record = load("record")
    threshold = record.LOAD_FRACTION * (record.os.cpu_count() or 1)
    monkeypatch.setattr(record.os, "getloadavg", lambda: (threshold + over, 1.0, 1.0))
    rec = record.Recording(["bench_x.py"])
    load_ = rec.load()
    assert load_["avg_1_5_15_start"][0] == round(threshold + over, 2)
    assert load_["under_load"] == (round(threshold + over, 2) > threshold)
    assert load_["label"].startswith("under load" if load_["under_load"] else "idle")


def test_recording_writes_a_complete_record_atomically(tmp_path, monkeypatch):
    record = load("record")
    monkeypatch.chdir(ROOT)
    for k in record.ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OJRS_KEEP_XLA_FLAGS", "1")
    rec = record.Recording([str(BENCH / "bench_x.py"), "--n", "3"])
    out = tmp_path / "sub" / "x.json"
    (tmp_path / "sub").mkdir()
    out.write_text("old")
    written = rec.write(out, {"single_ms": 1.5, "rows": [{"m": 2, "us": 3.25}]})
    assert json.loads(out.read_text()) == written
    check_metadata(written)
    assert written["command"] == "OJRS_KEEP_XLA_FLAGS=1 python benchmarks/bench_x.py --n 3"
    assert written["env"] == {"OJRS_KEEP_XLA_FLAGS": "1"}
    assert written["script"] == "benchmarks/bench_x.py" and written["cwd"] == "."
    assert written["figures"]["rows"][0]["us"] == 3.25
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.json"]  # no temporary left


def test_failed_write_keeps_the_old_record(tmp_path):
    record = load("record")
    out = tmp_path / "x.json"
    out.write_text("old")
    with pytest.raises(TypeError):
        record.write_json(out, {("not", "a string key"): 1})
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_every_benchmark_script_writes_a_record():
    scripts = sorted(p for p in BENCH.glob("*.py") if p.name not in HELPERS)
    assert {p.name for p in scripts} >= {"bench_asa.py", "run_all.py", "gpu_sweep.py"}
    for p in scripts:
        text = p.read_text()
        assert "add_out_argument(ap" in text and "Recording()" in text, p.name
        assert re.search(r"rec\.write\(\w+\.out, ", text), p.name


def test_record_command_line_wrapper(tmp_path):
    out = tmp_path / "w.json"
    cmd = [
        sys.executable,
        str(BENCH / "record.py"),
        "--out",
        str(out),
        "--",
        sys.executable,
        "-c",
        "print('one call 12.5 us'); print('batched 3 /s')",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["one call 12.5 us", "batched 3 /s"]
    rec = json.loads(out.read_text())
    check_metadata(rec)
    assert rec["figures"] == {"exit_status": 0, "stdout": ["one call 12.5 us", "batched 3 /s"]}
    assert "python benchmarks/record.py --out " in rec["command"]


def test_bench_sae_records_what_it_prints(tmp_path):
    """The cheapest benchmark at tiny sizes (a few seconds, mostly compilation)."""
    out = tmp_path / "sae.json"
    cmd = [
        sys.executable,
        "benchmarks/bench_sae.py",
        "--mecs",
        "1",
        "--steps",
        "5",
        "--repeats",
        "1",
        "--channels",
        "64",
        "--batch-size",
        "32",
        "--out",
        str(out),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    rec = json.loads(out.read_text())
    check_metadata(rec)
    assert rec["command"].endswith("python " + " ".join(cmd[1:]))
    row = p.stdout.strip().splitlines()[-1].split()  # N M widths compile_s run_s ms/step
    fig = rec["figures"]["rows"][0]
    assert (fig["n_ue"], fig["n_mec"], fig["widths"]) == (30, 1, "30-30-30")
    assert row[:3] == ["30", "1", "30-30-30"]
    assert f"{fig['compile_s']:.2f}" == row[3] and f"{fig['run_s']:.3f}" == row[4]
    assert f"{fig['ms_per_step']:.3f}" == row[5]


def test_published_performance_figures_are_in_their_records():
    chk = load("check_figures")
    checked, missing, orphans = chk.check()
    assert len(checked) > 100
    where = lambda f: f"{f.doc}:{f.line} {f.text!r}"  # noqa: E731
    assert not missing, "\n".join(f"{where(f)} not in {f.records}" for f in missing)
    assert not orphans, "\n".join(f"{where(f)} names no record" for f in orphans)


def test_figure_checker_catches_a_wrong_figure(tmp_path, monkeypatch):
    chk = load("check_figures")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text(json.dumps({"figures": {"single_s": 0.00164}}))
    (tmp_path / "D.md").write_text(
        "ASA takes 1.64 ms and about 1.6 ms (record: benchmarks/results/r.json).\n\n"
        "It takes 1.74 ms (record: r.json).\n\nIt takes 2 ms.\n"
    )
    monkeypatch.setattr(chk, "ROOT", tmp_path)
    monkeypatch.setattr(chk, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(chk, "_cache", {})
    checked, missing, orphans = chk.check(["D.md"])
    assert [f.text for f in checked if f.match] == ["1.64 ms", "about 1.6 ms"]
    assert [f.text for f in missing] == ["1.74 ms"]
    assert [f.text for f in orphans] == ["2 ms"]
