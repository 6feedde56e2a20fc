"""The certified benchmark: suite files (checksums, regeneration, certificates), the harness
(decision checks, NRR against an independent float64 reference), the external-command protocol
through the CLI and the Python API, and DROO's quantisation and learning."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference_model import RefModel

from ojrs_jax import bench
from ojrs_jax.bench import droo
from ojrs_jax.bench import suites as S
from ojrs_jax.bench.entries import builtin_entries
from ojrs_jax.bench.harness import Entry, check_decisions, run_entry
from ojrs_jax.cli.bench import main as bench_main
from ojrs_jax.core.settings import ConfigError
from ojrs_jax.env.fixed import FixedDeployment
from ojrs_jax.system.deployment import Problem, problem_costs
from ojrs_jax.system.exact import latency_np
from ojrs_jax.system.p2 import costs_latency
from ojrs_jax.system.scenario import SystemConfig, make_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper():
    return S.load_suite("paper")


def test_suite_files_are_small_versioned_and_match_their_checksums():
    entries = S.manifest()
    assert set(entries) == set(S.SUITES)
    total = 0
    for name, e in entries.items():
        data = (S.data_dir() / e["file"]).read_bytes()
        assert e["version"] == S.VERSION and e["file"] == S.file_name(name)
        assert S.sha256(data) == e["sha256"] and len(data) == e["bytes"]
        total += len(data)
    assert total < 5e6, total


def test_a_changed_suite_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(S.data_dir(), tmp_path / "data")
    path = tmp_path / "data" / S.file_name("paper")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    monkeypatch.setattr(S, "data_dir", lambda: tmp_path / "data")
    with pytest.raises(ConfigError, match="does not match its SHA-256"):
        S.load_suite("paper")
    with pytest.raises(ConfigError, match="unknown suite 'nope'"):
        S.load_suite("nope")


@pytest.mark.parametrize("name", ["paper", "mobile"])
def test_the_stored_problems_are_the_seeded_draws(name):
    stored, drawn = S.load_suite(name), S.draw_suite(name)
    assert [c.name for c in stored.cells] == [c.name for c in drawn.cells]
    for a, b in zip(stored.cells, drawn.cells, strict=True):
        for f in S.FIELDS:
            np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-6, err_msg=f)


@pytest.mark.parametrize("name", S.SUITES)
def test_every_certificate_holds(name):
    """SCIP's decision has the stored latency (recomputed in float64), its bound is below it,
    and Greedy is never better than the optimum (the same float64 costs)."""
    suite = S.load_suite(name)
    manifest = S.manifest()[name]
    assert manifest["problems"] == suite.size
    assert manifest["optimal"] == sum(int(c.opt_certified.sum()) for c in suite.cells)
    assert manifest["certified"] == sum(int(c.certified.sum()) for c in suite.cells)
    for cell in suite.cells:
        decide = builtin_entries()["greedy"].decide
        greedy = np.asarray(decide(suite.deployment(cell), jnp.asarray(cell.h)))
        for i, scn in enumerate(suite.scenarios(cell)):
            h = np.asarray(cell.h[i], np.float64)
            lat = latency_np(scn, h, cell.opt_a[i])
            assert lat == pytest.approx(float(cell.opt_latency[i]), rel=1e-12)
            assert float(cell.opt_bound[i]) <= lat * (1 + 1e-6)
            assert latency_np(scn, h, greedy[i]) >= float(cell.opt_bound[i]) * (1 - 1e-9)
            if cell.opt_certified[i]:
                assert latency_np(scn, h, greedy[i]) >= lat * (1 - 1e-9)
            else:  # certified within the gap: the incumbent is that close to the bound
                assert cell.gap[i] <= S.CERTIFY_GAP


def test_harness_nrr_equals_an_independent_reference(paper):
    r = run_entry(builtin_entries()["greedy"], paper, repeats=1)
    ratios = []
    for cell in paper.cells:
        a = np.asarray(builtin_entries()["greedy"].decide(paper.deployment(cell), cell.h))
        for i, scn in enumerate(paper.scenarios(cell)):
            ref = RefModel(scn)
            h = np.asarray(cell.h[i], np.float64)
            ratios.append(ref.latency(h, cell.opt_a[i]) / ref.latency(h, a[i]))
    assert r["certified"] == paper.size
    assert r["nrr"] == pytest.approx(np.mean(ratios), rel=1e-9)
    assert r["nrr_min"] == pytest.approx(np.min(ratios), rel=1e-9)
    assert 0 < r["nrr_min"] <= r["nrr_p10"] <= r["nrr_median"] <= 1 + 1e-9
    assert r["seconds_per_decision"] > 0


def test_decisions_are_checked(paper):
    cell = paper.cells[1]
    good = np.zeros((cell.size, cell.n_ue), np.int64)
    assert check_decisions(good, cell, "x").dtype == np.int32
    bad = [
        (good[:, :5], "expected \\(B, N\\)"),
        (good + 3, "must lie in 0..M = 0..2"),
        (good - 1, "must lie in 0..M"),
        (good + 0.5, "must be integers"),
        (good.astype(str), "must be integers"),
    ]
    for a, needle in bad:
        with pytest.raises(ConfigError, match=needle):
            check_decisions(a, cell, "x")


def test_an_external_command_through_the_cli_and_the_python_api(paper, tmp_path, capsys):
    """The NumPy Greedy of ojrs_jax.bench.external_greedy scores as the built-in Greedy, through
    `ojrs-bench run --command`, through `ojrs_jax.bench.run(command=...)` and `run_entry`."""
    cmd = f"{sys.executable} -m ojrs_jax.bench.external_greedy {{in}} {{out}}"
    bench_main(["run", "paper", "--command", cmd, "--out", str(tmp_path / "ext.json")])
    ext = json.loads((tmp_path / "ext.json").read_text())
    api = bench.run("paper", command=cmd)
    entry = run_entry(Entry("numpy greedy", command=cmd), paper)
    ref = run_entry(builtin_entries()["greedy"], paper, repeats=1)
    for r in (ext, api, entry):
        assert r["nrr"] == pytest.approx(ref["nrr"], rel=1e-12)
        assert r["nrr_min"] == pytest.approx(ref["nrr_min"], rel=1e-12)
    assert "NRR" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("script", "needle"),
    [
        ("import sys; sys.exit(3)", "the command exited with 3"),
        ("import sys, numpy as np; np.savez(sys.argv[2], b=np.ones(2))", "has no array 'a'"),
        ("import sys, numpy as np; np.savez(sys.argv[2], a=np.ones((2, 2)))", "decisions of shape"),
    ],
)
def test_a_failing_external_command_is_one_line(script, needle, tmp_path):
    (tmp_path / "s.py").write_text(script)
    cmd = f"{sys.executable} {tmp_path / 's.py'}"
    argv = [sys.executable, "-m", "ojrs_jax.cli.bench", "run", "mobile", "--command", cmd]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and needle in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_a_python_callable_one_problem_at_a_time():
    """`bench.run(decide=...)` with batched=False: every UE local scores as the reference
    model's latency of all-local decisions against the stored optima, computed here."""

    def all_local(dep, h):
        assert h.ndim == 2  # one problem at a time
        return np.zeros(h.shape[0], np.int32)

    r = bench.run("mobile", decide=all_local, batched=False, repeats=1)
    suite = S.load_suite("mobile")
    ratios = []
    for cell in suite.cells:
        scns = suite.scenarios(cell)
        for i in range(cell.size):
            h = np.asarray(cell.h[i], np.float64)
            lat = RefModel(scns[i]).latency(h, np.zeros(cell.n_ue, int))
            ratios.append(cell.opt_latency[i] / lat)
    assert r["scheduler"] == "all_local" and r["nrr"] == pytest.approx(np.mean(ratios), rel=1e-9)
    with pytest.raises(ConfigError, match="exactly one"):
        bench.run("mobile", "greedy", decide=all_local)
    with pytest.raises(ConfigError, match="unknown suite"):
        bench.run("moon", "greedy")


def test_a_trained_entry_reports_its_training_time(paper):
    """`prepare` returns the decision function and the seconds of training it took (a reused run
    reports its record's); the result sums them over the cells."""
    from ojrs_jax.bench.harness import Prepared

    greedy = builtin_entries()["greedy"].decide
    entry = Entry("timed", prepare=lambda suite, cell: Prepared(greedy, 2.5))
    r = run_entry(entry, paper, repeats=1)
    assert r["train_seconds"] == 2.5 * len(paper.cells)
    assert r["nrr"] == pytest.approx(run_entry(builtin_entries()["greedy"], paper, 1)["nrr"])


def test_cli_faults_and_export(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bench_main(["run", "paper", "--scheduler", "magic"])
    assert e.value.code == 2 and "unknown scheduler 'magic'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench_main(["run", "grid", "--scheduler", "main"])
    assert e.value.code == 2 and "main applies to the suites paper" in capsys.readouterr().err
    bench_main(["export", "mobile", str(tmp_path / "m.npz")])
    back = S.from_bytes("mobile", (tmp_path / "m.npz").read_bytes())
    np.testing.assert_array_equal(back.cells[0].opt_a, S.load_suite("mobile").cells[0].opt_a)


def test_droo_quantisation_is_order_preserving():
    """Candidate 0 is every UE's most likely option; candidate k moves one UE to one other
    option, the k-th most plausible change by p_ij / p_i,top (a loop over the pairs here)."""
    rng = np.random.default_rng(0)
    n, options, k = 7, 4, 12
    logits = jnp.asarray(rng.normal(size=(n, options)), jnp.float32)
    c = np.asarray(droo.candidates(logits, k))
    p = np.asarray(jax.nn.softmax(logits, axis=-1), np.float64)
    top = p.argmax(axis=1)
    changes = sorted(
        ((p[i, j] / p[i, top[i]], i, j) for i in range(n) for j in range(options) if j != top[i]),
        key=lambda t: -t[0],
    )
    np.testing.assert_array_equal(c[0], top)
    for cand, (_, i, j) in zip(c[1:], changes, strict=False):
        want = top.copy()
        want[i] = j
        np.testing.assert_array_equal(cand, want)
    assert c.shape == (k, n)


def test_droo_second_option_quantisation():
    """quantise="second": candidate k moves the k least confident UEs to their second option."""
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
    c = np.asarray(droo.candidates(logits, 8, "second"))
    p = np.asarray(jax.nn.softmax(logits, axis=-1), np.float64)
    top = np.argsort(-p, axis=1)
    order = np.argsort(p[np.arange(7), top[:, 0]] - p[np.arange(7), top[:, 1]])
    for k in range(8):
        moved = set(order[:k].tolist())
        np.testing.assert_array_equal(c[k], [top[i, 1 if i in moved else 0] for i in range(7)])


def test_droo_takes_the_best_candidate_and_learns():
    scn = make_scenario(SystemConfig(n_ue=6, n_mec=2))
    env = FixedDeployment(scn)
    params = env.default_params
    cfg = droo.DROOConfig(frames=600, batch=32, memory=256)
    trained = droo.train(jax.random.key(0), env, params, cfg)
    untrained = droo.DROO(trained.net, trained.net.init(jax.random.key(9), jnp.zeros(12)), 1)
    learned = droo.DROO(trained.net, trained.params, 1)  # the DNN's argmax alone (K = 1)
    keys = jax.random.split(jax.random.key(1), 64)
    probs = jax.vmap(lambda k: env.draw(k, (), jnp.int32(0), params)[1])(keys)
    lat = {}
    for name, m in (("untrained", untrained), ("learned", learned), ("droo", trained)):
        a = jax.vmap(lambda p, m=m: droo.decide(m.net, m.params, p, m.k))(probs)
        per = jax.vmap(lambda p, a: costs_latency(problem_costs(p), a))(probs, a)
        lat[name] = float(np.mean(np.asarray(per)))
    # K candidates: the decision is the best of them by P2's latency
    p0 = jax.tree.map(lambda x: x[0], probs)
    cands = droo.candidates(trained.net.apply(trained.params, droo.dnn_input(p0.h)), trained.k)
    costs = np.asarray(costs_latency(problem_costs(p0), cands))
    best = np.asarray(droo.decide(trained.net, trained.params, p0, trained.k))
    np.testing.assert_array_equal(best, np.asarray(cands)[np.argmin(costs)])
    assert lat["learned"] < 0.8 * lat["untrained"], lat
    assert isinstance(Problem(dep=p0.dep, h=p0.h), Problem)
