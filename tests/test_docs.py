"""The documentation site builds without a warning, and every Python snippet of it runs.

(a) `mkdocs build --strict` (mkdocs.yml, the notebooks rendered without running them:
OJRS_DOCS_EXECUTE=false) into a temporary directory: a broken link or anchor, a page missing
from the nav, an API reference mkdocstrings cannot resolve or a docstring it cannot render fails
the build. (b) Every ```python block of every page docs/**/*.md and of README.md runs as
written: the blocks of one page in order, in one namespace, in a fresh Python process whose
working directory is a new temporary directory (a snippet may write `runs/tiny`). ```bash,
```text and other blocks are not run. (c) benchmarks/check_figures.py reads the reproduction's
CSV tables as records and honours a block's "(no record kept)".
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`\n]*)$")

# Runs one page's blocks in order in one namespace; a failure names the page and the line.
DRIVER = """
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for b in blocks:
    code = compile("\\n" * (b["line"] - 1) + b["code"], b["page"], "exec")
    try:
        exec(code, ns)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"the python block at {b['page']}:{b['line']} failed")
"""


def page_name(path: Path) -> str:
    """A page's path relative to the repository (absolute when outside it)."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def python_blocks(path: Path) -> list[dict]:
    """The ```python blocks of a Markdown file: {"page", "line" (of the block's first line of
    code), "code"}, dedented by the fence's indentation (a block inside a list or admonition)."""
    blocks, cur, start, indent, ticks = [], None, 0, "", ""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        m = FENCE.match(line)
        if cur is None:
            if m:
                indent, ticks = m["indent"], m["ticks"]
                lang = m["info"].strip().split()[0].lower() if m["info"].strip() else ""
                cur, start = ([] if lang in ("python", "py") else False), i + 1
            continue
        if m and m["ticks"] == ticks and not m["info"].strip() and m["indent"] == indent:
            if cur is not False:
                code = textwrap.dedent("\n".join(cur))
                blocks.append({"page": page_name(path), "line": start, "code": code})
            cur = None
            continue
        if cur is not False:
            cur.append(line)
    return blocks


SNIPPET_PAGES = [p for p in PAGES if python_blocks(p)]


def test_the_site_has_snippets_to_run():
    names = {p.relative_to(ROOT).as_posix() for p in SNIPPET_PAGES}
    pages = ("getting-started", "guide/deciding", "guide/evaluation", "guide/benchmark")
    for page in (f"docs/{p}.md" for p in pages):
        assert page in names, page


def test_python_blocks_are_found_with_their_lines(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "text\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n"
        "- a list item\n\n    ```python\n    y = x + 1\n    ```\n\n```text\nz = 3\n```\n"
    )
    blocks = python_blocks(page)
    assert [(b["line"], b["code"]) for b in blocks] == [(4, "x = 1"), (14, "y = x + 1")]


def test_mkdocs_build_strict(tmp_path):
    """The whole site, without executing the notebooks, warnings being errors."""
    site = tmp_path / "site"
    env = {**os.environ, "OJRS_DOCS_EXECUTE": "false", "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", site]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    print(f"mkdocs build --strict: {seconds:.1f} s")
    home = (site / "index.html").read_text()
    assert "Headline results" in home
    api = (site / "reference" / "run" / "index.html").read_text()
    assert "load_run" in api and "Scheduler" in api  # mkdocstrings rendered the docstrings
    for nb in ("01_quick_start", "02_training", "03_paper_in_miniature"):
        assert (site / "notebooks" / nb / "index.html").is_file(), nb
    assert (site / "reproduction" / "figures" / "table3_nrr_curves.png").is_file()


@pytest.mark.parametrize("page", SNIPPET_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_snippets_run(page, tmp_path):
    """The page's ```python blocks in order, in one namespace, in a fresh process and a fresh
    working directory."""
    blocks = python_blocks(page)
    work = tmp_path / "work"
    work.mkdir()
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps(blocks))
    env = {**os.environ, "MPLBACKEND": "Agg", "OJRS_PROGRESS": "0"}
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", DRIVER, str(spec)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - t0
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    print(f"{page.relative_to(ROOT)}: {len(blocks)} blocks in {seconds:.1f} s")


def load_checker():
    spec = importlib.util.spec_from_file_location(
        "check_figures", ROOT / "benchmarks/check_figures.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_figure_checker_reads_reproduction_tables_and_declarations(tmp_path, monkeypatch):
    """A reproduction CSV table is a record; "(no record kept)" turns a figure that no record
    holds into a declared one, while the block's other figures are still checked."""
    chk = load_checker()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text(json.dumps({"figures": {"single_us": 24.0}}))
    (tmp_path / "reproduction").mkdir()
    (tmp_path / "reproduction" / "t.csv").write_text("method,time\nojrs,0.396 ms,15.9687\n")
    (tmp_path / "D.md").write_text(
        "A table (record: reproduction/t.csv):\n\n| method | time | L |\n| --- | --- | --- |\n"
        "| ojrs | 0.396 ms | 15.9687 |\n| greedy | 0.438 ms | 27.7704 |\n\n"
        "It takes 24-96 us (record: r.json; the upper end: no record kept).\n\n"
        "It takes 24-96 us (record: r.json; the upper end (no record kept)).\n\n"
        "It took 66 us (no record kept).\n\nIt took 5 min.\n"
    )
    monkeypatch.setattr(chk, "ROOT", tmp_path)
    monkeypatch.setattr(chk, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(chk, "_cache", {})
    checked, missing, orphans, declared = chk.check_all(["D.md"])
    assert [f.text for f in checked if f.match] == ["0.396 ms", "15.9687", "24-96 us", "24-96 us"]
    assert [f.text for f in missing] == ["0.438 ms", "27.7704", "24-96 us"]
    assert [f.text for f in declared] == ["24-96 us", "66 us"]
    assert [f.text for f in orphans] == ["5 min"]
