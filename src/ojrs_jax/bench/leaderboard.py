"""The leaderboard: every scheduler on every suite it applies to, one table, one figure, a record.

`leaderboard(suites, entries, out)` runs `harness.run_entry` for each (scheduler, suite) pair,
and writes to `out`: leaderboard.json (every result with its per-cell figures, the settings, the
machine, the date and the package's version), leaderboard.md (NRR mean, p10 and min, time per
decision, per suite) and leaderboard.png (NRR against time per decision, one point per scheduler
and suite). Times are measured on the machine that runs it: a ratio between two schedulers is
what carries over to another machine, not the absolute figure.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ojrs_jax.bench.harness import Entry, run_entry
from ojrs_jax.bench.suites import Suite
from ojrs_jax.core.io import atomic_write_text
from ojrs_jax.core.progress import log_summary


def applies(entry: Entry, suite: Suite) -> bool:
    return entry.suites is None or suite.name in entry.suites


def table(results: list[dict[str, Any]]) -> str:
    """The leaderboard as Markdown: one section per suite, schedulers by NRR."""
    lines = []
    for suite in dict.fromkeys(r["suite"] for r in results):
        rows = sorted((r for r in results if r["suite"] == suite), key=lambda r: -r["nrr"])
        r0 = rows[0]
        lines += [
            f"### {suite} (v{r0['version']}, {r0['problems']} problems, "
            f"{r0['certified']} certified)",
            "",
            "| scheduler | NRR mean | NRR p10 | NRR min | time per decision | trained in |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            prep = f"{r['train_seconds']:.0f} s" if r["train_seconds"] >= 0.5 else "-"
            lines.append(
                f"| {r['scheduler']} | {r['nrr']:.4f} | {r['nrr_p10']:.4f} | {r['nrr_min']:.4f} "
                f"| {_time(r['seconds_per_decision'])} | {prep} |"
            )
        lines.append("")
    return "\n".join(lines)


def _time(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def figure(results: list[dict[str, Any]], path: Path) -> Path:
    """NRR against time per decision (log scale), a marker per suite, a label per scheduler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ojrs_jax.run.plots import save_figure

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = dict(zip(dict.fromkeys(r["suite"] for r in results), "osD^vP", strict=False))
    for r in results:
        ax.scatter(r["seconds_per_decision"], r["nrr"], marker=markers[r["suite"]], s=36)
        ax.annotate(
            r["scheduler"],
            (r["seconds_per_decision"], r["nrr"]),
            fontsize=7,
            xytext=(3, 2),
            textcoords="offset points",
        )
    for suite, mk in markers.items():
        ax.scatter([], [], marker=mk, color="gray", label=suite)
    ax.set_xscale("log")
    ax.set(
        xlabel="time per decision (s)",
        ylabel="NRR vs certified optimum (mean)",
        title="Offloading schedulers on the certified suites",
    )
    ax.legend(title="suite")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def leaderboard(
    suites: list[Suite], entries: list[Entry], out: Path, repeats: int = 3
) -> list[dict[str, Any]]:
    """Every entry on every suite it applies to; writes the table, the figure and the record."""
    import logging

    log = logging.getLogger(__name__)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, t0, load0 = [], time.perf_counter(), os.getloadavg()
    for suite in suites:
        for e in entries:
            if applies(e, suite):
                r = run_entry(e, suite, repeats)
                r["note"] = e.note
                results.append(r)
                log_summary(log, f"{e.name} on {suite.name}", {"NRR": r["nrr"]})
                print(
                    f"{suite.name:>7} {e.name:>11}: NRR {r['nrr']:.4f} (p10 {r['nrr_p10']:.4f}, "
                    f"min {r['nrr_min']:.4f}), {_time(r['seconds_per_decision'])} per decision",
                    flush=True,
                )
    record = {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - t0,
        "package": version("ojrs-jax"),
        "jax": version("jax"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
        },
        "load_1_5_15": {"start": list(load0), "end": list(os.getloadavg())},
        "results": results,
    }
    atomic_write_text(out / "leaderboard.json", json.dumps(record, indent=1))
    atomic_write_text(out / "leaderboard.md", table(results))
    figure(results, out / "leaderboard.png")
    return results
