"""Records of benchmark runs: the figures a script printed, with where, when and how they were
taken, written atomically as JSON under benchmarks/results/.

Every script in benchmarks/ uses it the same way:

    from record import add_out_argument, Recording
    ap = argparse.ArgumentParser(...)
    add_out_argument(ap, "bench_asa")           # --out, default benchmarks/results/bench_asa.json
    args = ap.parse_args()
    rec = Recording()                            # command line, date, git commit, load at start
    ...                                          # measure and print as before
    rec.write(args.out, figures)                 # machine, load at end, then the file

A record is one JSON object:
- `command` (the command line as typed, paths relative to `cwd`, preceded by the variables of
  `env` that were set), `argv`, `cwd` (relative to the repository root when inside it),
  `script`, `env` (the variables of ENV that affect JAX, as set when the run started; XLA_FLAGS
  includes the flag `import ojrs_jax` appends, `machine.xla_flags` the value at the end);
- `date_utc` (start, ISO 8601), `date_utc_end`, `wall_s`;
- `git`: `commit`, `dirty` (tracked files differ from the commit), `branch`;
- `machine`: platform, CPU model (/proc/cpuinfo), core count, memory, Python, jax, jaxlib,
  numpy, backend, device kind and count, XLA_FLAGS;
- `load`: os.getloadavg() at start and end, the threshold, `under_load` and a `label`. A run is
  under load when the 1-minute load average at start or end exceeds 0.75 x the core count (1.5
  on a 2-core machine). The end value includes the benchmark's own threads (a 2-thread run adds
  up to about 2), so `others_cores` also gives the CPU used by other processes during the run:
  busy time of the whole machine (/proc/stat) minus this process's and its waited children's
  CPU time, per second of wall time;
- `figures`: what the script measured (the numbers it printed).

`python benchmarks/record.py --out FILE -- CMD ARGS...` runs any command (e.g. `ojrs-baselines`)
and records its stdout lines as the figures, with the same metadata; its exit status is the
command's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ojrs_jax.core.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LOAD_FRACTION = 0.75  # under load: 1-min load average > LOAD_FRACTION x cores, at start or end
ENV = (
    "OJRS_KEEP_XLA_FLAGS",
    "XLA_FLAGS",
    "JAX_PLATFORMS",
    "JAX_ENABLE_X64",
    "PYTHONPATH",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
)


def add_out_argument(ap: argparse.ArgumentParser, name: str) -> None:
    """Add `--out` to a script's parser, defaulting to benchmarks/results/NAME.json."""
    ap.add_argument(
        "--out",
        type=Path,
        default=RESULTS / f"{name}.json",
        help=f"record file (default: benchmarks/results/{name}.json)",
    )


def _relative(p: str | Path, base: Path) -> str:
    """`p` relative to `base` when it lies inside it, else unchanged."""
    try:
        return str(Path(p).resolve().relative_to(base))
    except (ValueError, OSError):
        return str(p)


def command_line(argv: list[str] | None = None) -> list[str]:
    """sys.argv with absolute paths inside the cwd (the script's, --out's) made relative to it."""
    argv = list(sys.argv if argv is None else argv)
    cwd = Path.cwd().resolve()
    return [_relative(a, cwd) if os.path.isabs(a) else a for a in argv]


def git_state() -> dict:
    """Commit, branch and whether tracked files differ from it (None where git is missing)."""

    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": None if status is None else bool(status),
    }


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict:
    """The host and the JAX installation."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    out = {
        "platform": platform.platform(),
        "arch": platform.machine(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or None,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(int(mem_kb.split()[0]) / 2**20, 1) if mem_kb else None,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    try:
        import jax
        import jaxlib
        import numpy as np

        dev = jax.devices()
        out.update(
            jax=jax.__version__,
            jaxlib=jaxlib.__version__,
            numpy=np.__version__,
            backend=jax.default_backend(),
            device_kind=dev[0].device_kind,
            device_count=len(dev),
        )
    except Exception as e:  # noqa: BLE001 (a record without JAX still says why)
        out["jax"] = f"unavailable: {e}"
    return out


def _busy_seconds() -> float | None:
    """CPU-busy seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Recording:
    """One benchmark run: created when the run starts, `write` when its figures are in."""

    def __init__(self, argv: list[str] | None = None):
        self.argv = command_line(argv)
        self.env = {k: os.environ[k] for k in ENV if k in os.environ}
        self.date = _utc()
        self.t0 = time.perf_counter()
        self.load_start = list(os.getloadavg())
        self.busy0, self.own0 = _busy_seconds(), _own_seconds()
        self.git = git_state()

    def load(self) -> dict:
        """Load at start and end, and whether the run counts as under load."""
        end = list(os.getloadavg())
        cores = os.cpu_count() or 1
        threshold = LOAD_FRACTION * cores
        wall = time.perf_counter() - self.t0
        busy = _busy_seconds()
        others = None
        if busy is not None and self.busy0 is not None and wall > 0:
            own = _own_seconds() - self.own0
            others = round(max(0.0, (busy - self.busy0 - own) / wall), 2)
        # The decision is taken on the rounded figures the record keeps, so a reader of the
        # record (or its test) reaches the same verdict: 1.504 is stored and judged as 1.5.
        start = [round(x, 2) for x in self.load_start]
        end = [round(x, 2) for x in end]
        under = max(start[0], end[0]) > threshold
        return {
            "avg_1_5_15_start": start,
            "avg_1_5_15_end": end,
            "threshold_1min": threshold,
            "rule": f"under load when the 1-min load average at start or end > {LOAD_FRACTION}"
            " x cores (the end value includes this run's own threads)",
            "under_load": under,
            "label": (
                f"under load (1-min load {start[0]:.2f} at start, {end[0]:.2f} at end"
                f" > {threshold:g})"
                if under
                else f"idle (1-min load {start[0]:.2f} at start, {end[0]:.2f} at end"
                f" <= {threshold:g})"
            ),
            "others_cores": others,
        }

    def record(self, figures: dict) -> dict:
        """The full record of this run with `figures`."""
        cwd = Path.cwd().resolve()
        is_script = self.argv[0].endswith(".py")
        return {
            "record": 1,
            "script": _relative(cwd / self.argv[0], ROOT) if is_script else None,
            "command": " ".join(
                [
                    *(f"{k}={shlex.quote(v)}" for k, v in self.env.items() if k != "XLA_FLAGS"),
                    shlex.join(["python", *self.argv] if is_script else self.argv),
                ]
            ),
            "argv": self.argv,
            "cwd": _relative(cwd, ROOT) if cwd != ROOT else ".",
            "env": self.env,
            "date_utc": self.date,
            "date_utc_end": _utc(),
            "wall_s": round(time.perf_counter() - self.t0, 3),
            "git": self.git,
            "machine": machine(),
            "load": self.load(),
            "figures": figures,
        }

    def write(self, out: Path, figures: dict) -> dict:
        """Write the record atomically to `out` (temporary file + os.replace); returns it."""
        rec = self.record(figures)
        write_json(out, rec)
        print(
            f"record: {_relative(out, Path.cwd().resolve())} ({rec['load']['label']})",
            file=sys.stderr,
        )
        return rec


def write_json(path: Path, obj) -> None:
    """`obj` as indented JSON at `path`, atomically: a reader sees the old file or the new."""
    text = json.dumps(obj, indent=1, default=_jsonable) + "\n"
    atomic_write_text(path, text)


def _jsonable(x):
    """NumPy scalars and arrays (and other odd leaves) as plain JSON values."""
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Run a command and record its stdout lines with the run's metadata.",
        usage="python benchmarks/record.py --out FILE -- CMD [ARGS...]",
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command given after --")
    rec = Recording()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in p.stdout:
        sys.stdout.write(line)
        lines.append(line.rstrip("\n"))
    rc = p.wait()
    rec.write(a.out, {"exit_status": rc, "stdout": lines})
    return rc


if __name__ == "__main__":
    sys.exit(main())
