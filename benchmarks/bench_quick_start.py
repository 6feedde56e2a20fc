"""README command 1 as a new user runs it: fresh clone and venv, `pip install -e .`, `ojrs-train`.

    python benchmarks/bench_quick_start.py [--repo .] [--python python3.11]

Clones the repository's committed HEAD into a temporary directory, then times, in one shell as
the README gives it, `python3.11 -m venv .venv && . .venv/bin/activate && pip install -e .` and
`ojrs-train` (with an empty compilation cache, as on a new machine), and keeps the NRR line the
job prints. pip's own download cache is left as it is (on a machine that never installed the
dependencies, downloads add to the install time). Writes a record (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import ROOT, Recording, add_out_argument  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=ROOT)
    ap.add_argument("--python", default="python3.11")
    add_out_argument(ap, "bench_quick_start")
    args = ap.parse_args()
    rec = Recording()
    work = Path(tempfile.mkdtemp(prefix="ojrs-quick-start-"))
    try:
        clone = work / "ojrs-jax"
        subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
        install = f"{args.python} -m venv .venv && . .venv/bin/activate && pip install -q -e ."
        t0 = time.perf_counter()
        subprocess.run(["bash", "-c", install], cwd=clone, check=True, capture_output=True)
        t_install = time.perf_counter() - t0
        env_cmd = f"OJRS_CACHE_DIR={work / 'xla'} . .venv/bin/activate && ojrs-train"
        t0 = time.perf_counter()
        p = subprocess.run(["bash", "-c", env_cmd], cwd=clone, capture_output=True, text=True)
        t_train = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"ojrs-train failed: {p.stderr.strip()[-800:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m = re.search(r"NRR = L\(exact\)/L\(policy\): mean ([0-9.]+)", p.stdout)
    figures = {
        "install_s": t_install,
        "ojrs_train_s": t_train,
        "total_s": t_install + t_train,
        "nrr": float(m.group(1)) if m else None,
        "stdout": p.stdout.strip().splitlines(),
    }
    print(
        f"install {t_install:.1f} s, ojrs-train {t_train:.1f} s, total {t_install + t_train:.1f} s"
        f", NRR {figures['nrr']}"
    )
    rec.write(args.out, figures)


if __name__ == "__main__":
    main()
