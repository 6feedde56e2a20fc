"""Aggregation of `ojrs-reproduce` jobs: the paper's Tables II-III and Figs. 3-10 (Sec. V).

`aggregate` reads every result.json under some directories (a Hydra multirun sweep, single runs,
or several sweeps) and writes results.md, table2/table3/drl as Markdown and CSV beside the paper's
numbers, figures/ (Figs. 3-10 and the Table III NRR curves) and raw/ (each job's metrics). Hydra
calls `AggregateCallback` when a sweep of `ojrs-reproduce -m` ends. Best/Avg: see reproduce.py.
The same experiment found twice (e.g. in two sweeps given together) is refused naming both job
directories, since one job's table or figures would overwrite the other's.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ojrs_jax.core.io import atomic_write_text, write_csv
from ojrs_jax.core.progress import summary_line
from ojrs_jax.core.settings import ConfigError

# The paper's figures (Sec. V), printed beside ours.
PAPER_TABLE2 = {  # method: (computation time per decision s, task latency s, reward)
    "ojrs": (0.0174, 20.6874, 0.0483),
    "greedy": (0.0139, 25.2942, 0.0395),
    "random": (0.0057, 36.4325, 0.0275),
    "asa": (0.2354, 20.2385, 0.0494),
}
PAPER_TABLE3 = {  # M: (Acc, CR, F-Best, F-Avg, S-Best, S-Avg), NRR against PSO
    1: (1.0, 0.0, 0.9987, 0.9462, 0.9988, 0.9764),
    2: (0.9273, 0.5, 0.9895, 0.9421, 0.9886, 0.9693),
    3: (0.8994, 0.67, 0.9821, 0.9362, 0.9823, 0.9612),
    4: (0.8823, 0.75, 0.9732, 0.9252, 0.9733, 0.9575),
    5: (0.8782, 0.80, 0.9672, 0.9197, 0.9671, 0.9488),
}
PAPER_STABLE = {"per": 2500, "uniform": 7000}  # epochs to a stable reward (Figs. 9-10)


def find_results(dirs: Sequence[Path]) -> list[tuple[Path, dict]]:
    """Every job directory holding a result.json under `dirs`, in a stable order."""
    found = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise ConfigError(f"not a directory: {d}")
        for f in sorted(d.rglob("result.json")):
            if "results" in f.relative_to(d).parts[:-1]:
                continue  # an earlier aggregation's copy
            try:
                found.append((f.parent, json.loads(f.read_text())))
            except (OSError, json.JSONDecodeError) as e:
                raise ConfigError(f"cannot read {f}: {e}") from e
    return found


def experiment_of(r: dict) -> str:
    """The experiment a job's result fills (its tables and figures): kind, preset and, for
    Table III, M, for the DRL figures, the replay."""
    parts = [str(r.get("kind", "?"))]
    if r.get("preset"):
        parts.append(f"preset {r['preset']}")
    if r.get("kind") == "table3":
        parts.append(f"M = {r.get('n_mec')}")
    if r.get("kind") == "drl":
        parts.append(f"replay {r.get('replay')}")
    return ", ".join(parts)


def check_unique(found: Sequence[tuple[Path, dict]]) -> None:
    """Refuse two jobs of the same experiment (`ConfigError` naming both directories)."""
    seen: dict[str, Path] = {}
    for d, r in found:
        e = experiment_of(r)
        if e in seen:
            raise ConfigError(
                f"the same experiment ({e}) is in {seen[e]} and {d}: one would overwrite the "
                "other's table and figures (aggregate them separately, each with its own --out)"
            )
        seen[e] = d


def _pm(d: dict | None, digits: int = 4) -> str:
    if not d:
        return "-"
    if len(d.get("values", [])) > 1:
        return f"{d['mean']:.{digits}f} +- {d['std']:.{digits}f}"
    return f"{d['mean']:.{digits}f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _write_table(out: Path, stem: str, header: list[str], rows: list[list]) -> str:
    """<stem>.csv and <stem>.md in `out`; returns the Markdown."""
    md = _md_table(header, rows)
    write_csv(out / f"{stem}.csv", header, rows)
    atomic_write_text(out / f"{stem}.md", md + "\n")
    return md


def _fmt_time(sec: float) -> str:
    return f"{sec * 1e3:.3f} ms" if sec < 1 else f"{sec:.2f} s"


def table2_rows(res: dict) -> tuple[list[str], list[list]]:
    header = [
        "method",
        "time/decision",
        "latency L (s)",
        "median L",
        "reward 1/L",
        "NRR vs exact",
        "paper time",
        "paper L",
        "paper reward",
    ]
    rows = []
    for r in res["rows"]:
        p = PAPER_TABLE2.get(r["method"])
        rows.append(
            [
                r["method"],
                _fmt_time(r["seconds_per_decision"]),
                f"{r['latency']:.4f}",
                f"{r['latency_median']:.4f}",
                f"{r['reward']:.4f}",
                f"{r['nrr_exact']:.4f}" if "nrr_exact" in r else "-",
                *(("-",) * 3 if p is None else (f"{p[0]:.4f} s", f"{p[1]:.4f}", f"{p[2]:.4f}")),
            ]
        )
    return header, rows


TABLE3_COLS = ("F-Best", "F-Avg", "S-Best", "S-Avg")


def table3_rows(results: list[dict]) -> tuple[list[str], list[list]]:
    header = [
        "preset",
        "M",
        "seeds",
        "Acc",
        "CR",
        *(f"{k} vs exact" for k in TABLE3_COLS),
        *(f"{k} vs PSO" for k in TABLE3_COLS),
        "paper Acc",
        "paper CR",
        *(f"paper {k} (PSO)" for k in TABLE3_COLS),
    ]
    rows = []
    for r in sorted(results, key=lambda r: (r.get("preset", ""), r["n_mec"])):
        t = r["table3"]
        p = PAPER_TABLE3.get(r["n_mec"])
        rows.append(
            [
                r.get("preset") or "-",
                r["n_mec"],
                r["seeds"],
                f"{r['sae']['acc']:.4f}",
                f"{r['sae']['cr']:.2f}",
                *(_pm(t.get(f"{k} vs exact")) for k in TABLE3_COLS),
                *(_pm(t.get(f"{k} vs pso")) for k in TABLE3_COLS),
                *(
                    ("-",) * 6
                    if p is None
                    else (f"{p[0]:.4f}", f"{p[1]:.2f}", *(f"{v:.4f}" for v in p[2:]))
                ),
            ]
        )
    return header, rows


def drl_rows(results: list[dict]) -> tuple[list[str], list[list]]:
    header = [
        "replay",
        "preset",
        "M",
        "seeds",
        "epochs to stable reward",
        "final T_SA",
        "train time (s)",
        "paper",
    ]
    rows = [
        [
            r["replay"],
            r.get("preset") or "-",
            r["n_mec"],
            r["seeds"],
            _pm(r["epochs_to_stable"], 0),
            " ".join(map(str, r["final_t_sa"])),
            f"{r['train_seconds']:.1f}",
            f"about {PAPER_STABLE.get(r['replay'], '-')}",
        ]
        for r in sorted(results, key=lambda r: (r.get("preset", ""), r["replay"]))
    ]
    return header, rows


def _plot_drl(runs: list[tuple[Path, dict]], figures: Path) -> list[Path]:
    """Fig. 8 (T_SA), Fig. 9 (2p-ER) and Fig. 10 (traditional): reward and loss, seed mean.
    With runs of several training presets, each preset gets its own figures (name suffix)."""
    presets = sorted({r.get("preset", "") for _, r in runs})
    paths = []
    for preset in presets:
        tag = f"_{preset}" if len(presets) > 1 and preset else ""
        by_replay = {r["replay"]: (d, r) for d, r in runs if r.get("preset", "") == preset}
        paths += _plot_drl_preset(by_replay, figures, tag, preset)
    return paths


def _plot_drl_preset(
    by_replay: dict[str, tuple[Path, dict]], figures: Path, tag: str, preset: str
) -> list[Path]:
    from matplotlib.figure import Figure

    from ojrs_jax.run.plots import moving_average, save_figure

    paths = []
    label = f", train={preset}" if preset else ""
    for fig_no, replay in ((9, "per"), (10, "uniform")):
        if replay not in by_replay:
            continue
        d, r = by_replay[replay]
        m = np.load(d / "metrics.npz")
        fig = Figure(figsize=(7, 6))
        ax1, ax2 = fig.subplots(2, 1, sharex=True)
        ep = np.arange(m["reward"].shape[1])
        for s, rew in enumerate(m["reward"]):
            ax1.plot(ep, moving_average(rew, 200), lw=0.8, alpha=0.6, label=f"seed {s}")
        ax1.plot(ep, moving_average(m["reward"].mean(0), 200), color="k", lw=1.5, label="mean")
        ax2.plot(ep, m["loss"].mean(0), color="tab:red", lw=0.8)
        for ax in (ax1, ax2):
            if 0 < r["change_epoch"] < ep.size:
                ax.axvline(r["change_epoch"], color="grey", ls="--", lw=1)
        name = "2p-ER" if replay == "per" else "traditional replay (uniform, epsilon-greedy)"
        ax1.set(
            ylabel="reward 1/L, 200-epoch average", title=f"Fig. {fig_no}: DRL with {name}{label}"
        )
        ax1.legend(fontsize=7)
        ax2.set(xlabel="epoch", ylabel="loss (eq. 25), seed mean")
        ax2.set_yscale("log")
        paths.append(save_figure(fig, figures / f"fig{fig_no}_drl_{replay}{tag}.png"))
    if "per" in by_replay:
        d, r = by_replay["per"]
        m = np.load(d / "metrics.npz")
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        for s, t in enumerate(m["t_sa"]):
            ax.plot(np.arange(t.size), t, lw=0.8, label=f"seed {s}")
        ax.set(
            xlabel="epoch",
            ylabel="T_SA (ASA iterations)",
            title=f"Fig. 8: adaptive ASA iteration count (eq. 30), 2p-ER{label}",
        )
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, figures / f"fig8_t_sa{tag}.png"))
    return paths


def _plot_nrr(runs: list[tuple[Path, dict]], figures: Path) -> Path | None:
    """NRR vs exact during training for each M (seed mean and range)."""
    from matplotlib.figure import Figure

    from ojrs_jax.run.plots import save_figure

    if not runs:
        return None
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for d, r in sorted(runs, key=lambda x: (x[1].get("preset", ""), x[1]["n_mec"])):
        c = np.load(d / "nrr_curves.npz")
        if "nrr_exact" not in c:
            continue
        y = c["nrr_exact"]
        lab = f"M = {r['n_mec']}" + (f" ({r['preset']})" if r.get("preset") else "")
        (line,) = ax.plot(c["epoch"], y.mean(1), marker=".", label=lab)
        ax.fill_between(c["epoch"], y.min(1), y.max(1), color=line.get_color(), alpha=0.2)
    change = runs[0][1]["change_epoch"]
    ax.axvline(change, color="grey", ls="--", lw=1, label="weights change")
    ax.set(
        xlabel="epoch",
        ylabel="NRR vs exact optimum (held-out draws)",
        title="Table III: NRR during training (seed mean, min-max band)",
    )
    ax.legend(fontsize=7)
    return save_figure(fig, figures / "table3_nrr_curves.png")


FIGURE_FILES = {  # job output -> aggregated name
    "sae": {
        "fig3_accuracy.png": "fig3_accuracy.png",
        "fig4_loss.png": "fig4_loss.png",
        "fig5_errors_2r_sae.png": "fig5_errors_2r_sae.png",
        "fig6_errors_sae.png": "fig6_errors_sae.png",
    },
    "fig7": {"fig7.png": "fig7_asa_vs_sa.png"},
}


def aggregate(dirs: Sequence[Path], out: Path) -> dict[str, Any]:
    """Tables (Markdown + CSV), figures and raw metrics of every job under `dirs` into `out`."""
    found = find_results(dirs)
    if not found:
        raise ConfigError(f"no result.json under {', '.join(str(d) for d in dirs)}")
    check_unique(found)
    out = Path(out)
    figs = out / "figures"
    by_kind: dict[str, list[tuple[Path, dict]]] = {}
    for d, r in found:
        by_kind.setdefault(r.get("kind", "?"), []).append((d, r))
    sections = ["# ojrs-jax reproduction results", ""]
    sections.append(
        "Jobs: "
        + ", ".join(f"{r.get('name', '?')} ({r.get('wall_seconds', 0):.0f} s)" for _, r in found)
    )
    total = sum(r.get("wall_seconds", 0.0) for _, r in found)
    sections.append(f"\nSum of job wall times: {total:.0f} s.\n")
    written: list[str] = []
    for _, r in by_kind.get("table2", []):
        tag = f"_{r['preset']}" if len(by_kind["table2"]) > 1 and r.get("preset") else ""
        md = _write_table(out, f"table2{tag}", *table2_rows(r))
        draws = r.get("draws", r.get("channels"))  # "channels" in records before the rename
        sections += [
            f"## Table II (N = {r['n_ue']}, M = {r['n_mec']}, {draws} draws, "
            f"exact certified on {r['exact_certified']})",
            "",
            md,
            "",
        ]
        written.append(f"table2{tag}.md")
    if "table3" in by_kind:
        res = [r for _, r in by_kind["table3"]]
        md = _write_table(out, "table3", *table3_rows(res))
        sections += [
            "## Table III (mean +- std over seeds; Best/Avg over evaluation points)",
            "",
            md,
            "",
        ]
        written.append("table3.md")
        p = _plot_nrr(by_kind["table3"], figs)
        if p is not None:
            written.append(str(p.relative_to(out)))
    if "drl" in by_kind:
        res = [r for _, r in by_kind["drl"]]
        md = _write_table(out, "drl", *drl_rows(res))
        sections += ["## Figs. 8-10: 2p-ER vs traditional replay", "", md, ""]
        written += ["drl.md", *(str(p.relative_to(out)) for p in _plot_drl(by_kind["drl"], figs))]
    for kind, files in FIGURE_FILES.items():
        for d, _ in by_kind.get(kind, []):
            for src, dst in files.items():
                if (d / src).is_file():
                    figs.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(d / src, figs / dst)
                    written.append(f"figures/{dst}")
    if "sae" in by_kind:
        r = by_kind["sae"][0][1]
        rows = [
            [n, f"{m['acc']:.4f}", f"{m.get('nmse_db', float('nan')):.2f}"]
            for n, m in r["models"].items()
        ]
        rows.append(["PCA bound (best linear code)", f"{r['pca_bound']['acc']:.4f}", "-"])
        sections += [
            f"## Figs. 3-6: autoencoders (N = {r['n_ue']}, M = {r['n_mec']}, CR {r['cr']:.2f})",
            "",
            _md_table(["model", "held-out Acc", "NMSE (dB)"], rows),
            "",
        ]
    if "fig7" in by_kind:
        r = by_kind["fig7"][0][1]
        sections += [
            "## Fig. 7: ASA vs SA (mean best latency over draws)",
            "",
            _md_table(
                ["start", "ASA final", "SA final", "exact"],
                [
                    [
                        f"{r['start']:.4f}",
                        f"{r['asa_final']:.4f}",
                        f"{r['sa_final']:.4f}",
                        f"{r['exact']:.4f}",
                    ]
                ],
            ),
            "",
        ]
    raw, taken = out / "raw", set()
    for d, r in found:
        base = name = f"{r.get('name', d.name)}_{d.name}"
        while name in taken:  # jobs of different experiments in same-named job folders
            name = f"{base}_{len(taken)}"
        taken.add(name)
        dst = raw / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            if f.is_file() and f.suffix in (".json", ".csv", ".npz", ".yaml"):
                shutil.copyfile(f, dst / f.name)
    atomic_write_text(out / "results.md", "\n".join(sections) + "\n")
    return {"out": str(out), "jobs": len(found), "written": written}


try:  # Hydra's callback API: aggregation when a multirun sweep ends
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra-core is a dependency
    _HydraCallback = object  # type: ignore[assignment,misc]


class AggregateCallback(_HydraCallback):  # type: ignore[misc,valid-type]
    """`hydra.callbacks` entry of conf/reproduce.yaml: aggregates a finished sweep into
    <sweep dir>/results (the same as `ojrs-aggregate <sweep dir>`)."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        if not any(sweep.rglob("result.json")):
            return  # every job failed; their errors were already reported
        try:
            report = aggregate([sweep], sweep / "results")
        except ConfigError as e:  # e.g. one experiment twice (a sweep over seeds): jobs are kept
            print(f"warning: the sweep was not aggregated: {e}", file=sys.stderr)
            return
        print(f"aggregated {report['jobs']} jobs into {report['out']}/results.md")


def _mean(x: Any) -> float | None:
    return None if x is None else float(x["mean"])


def job_summary(r: dict[str, Any]) -> str:
    """The key numbers of a job's result, one line (`ojrs-reproduce` prints it)."""
    kind = r.get("kind")
    if kind == "table2":
        rows = {row["method"]: row for row in r["rows"]}
        vals: dict[str, Any] = {f"L {m}": row["latency"] for m, row in rows.items()}
        if "nrr_exact" in rows.get("ojrs", {}):
            vals["OJRS NRR vs exact"] = rows["ojrs"]["nrr_exact"]
    elif kind == "table3":
        t = r["table3"]
        vals = {
            "SAE Acc": r["sae"].get("acc"),
            "F-Best vs exact": _mean(t.get("F-Best vs exact")),
            "S-Best vs exact": _mean(t.get("S-Best vs exact")),
            "final NRR vs exact": _mean(r.get("final_nrr_exact")),
        }
    elif kind == "drl":
        vals = {"replay": r["replay"], "epochs to stable": _mean(r["epochs_to_stable"])}
    elif kind == "sae":
        vals = {f"Acc {n}": m["acc"] for n, m in r["models"].items()} | {"CR": r["cr"]}
    else:
        vals = {k: r.get(k) for k in ("start", "asa_final", "sa_final", "exact")}
    return summary_line({"seeds": r.get("seeds"), **vals, "train s": r.get("train_seconds")})
