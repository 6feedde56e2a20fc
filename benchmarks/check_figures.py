"""Check that every performance figure in the documents is in the record it names.

    python benchmarks/check_figures.py [-v]

The documents are README.md and every page of the documentation site, docs/**/*.md
(BENCHMARKS.md and REPRODUCTION.md are pointers to its pages `performance.md` and
`reproduction.md`, which hold their figures now). The documents name records as
`benchmarks/results/NAME.json` (or `NAME.json` for a file in that folder), or as
`reproduction/NAME.csv`, a table that `ojrs-aggregate` wrote for the paper's reproduction. A
block is a paragraph, or a table together with the paragraph right before it (its caption). In
a block that names records, every number followed by a unit of time or throughput (us, ms, s,
min, /s, decisions/s, GFLOP/s), memory (MB, GB) or a ratio written `12.5x`, and every decimal
number in a table cell after the first column, must equal a number of one of the named
records (any numeric leaf of the JSON, or a number inside a string leaf such as a recorded stdout
line) within the rounding of the printed digits: 0.5 of the last printed digit (1 after
"about"), trailing zeros of an integer counting as rounding. The record's value may be in another
unit of the same kind (s for ms, MB for GB, ...). Ranges ("72-96 us") check both ends.
A block that names no record may not hold a figure in us, ms, min, /s, MB, GB or `x`; seconds
alone are not flagged there, because the MEC model's latencies are in seconds too. Numbers right
after "paper's" or "paper:" (the paper's own figures) are not checked. A block that says
"(no record kept)" declares that some of its figures were measured without a record: those of
its figures that are not found are listed as declared, not as failures (the others are still
checked against the block's records). Exits 1 on a failure.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS_DIR = "docs"  # the documentation site's pages (mkdocs.yml)

NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
UNIT = r"decisions/s|GFLOP/s|/s|us|ms|min|s|MB|GB|x"
FIGURE = re.compile(
    rf"(?<![\w.,/-])(?P<about>about\s+)?(?P<a>{NUM})(?:\s*-\s*(?P<b>{NUM}))?"
    rf"(?P<sp>\s?)(?P<unit>{UNIT})(?![\w/])"
)
DECIMAL = re.compile(r"(?<![\w.,/-])(?P<about>about\s+)?(?P<a>\d+\.\d+)(?![\w.])")
RECORD = re.compile(r"(?:benchmarks/results/)?((?:[\w.-]+/)*[\w.-]+\.json)")
TABLE_RECORD = re.compile(r"(?<![\w/.-])(reproduction/[\w.-]+\.csv)")  # relative to ROOT
UNRECORDED = "(no record kept)"
SCALES = {
    "us": (1, 1e3, 1e6),
    "ms": (1, 1e3, 1e-3),
    "s": (1, 1e-3),
    "min": (1, 1 / 60),
    "MB": (1, 2**-20),
    "GB": (1e-3, 1 / 1024),
    "/s": (1,),
    "decisions/s": (1,),
    "GFLOP/s": (1,),
    "x": (1,),
    "": (1,),
}
ORPHAN_UNITS = {"us", "ms", "min", "/s", "decisions/s", "GFLOP/s", "MB", "GB", "x"}
EXEMPT_BEFORE = re.compile(r"paper's(\s+\w+)?\s*$|paper:\s*$|\(Table II\):\s*$")


@dataclass
class Block:
    doc: str
    line: int
    lines: list[str]
    table: bool
    records: list[str] = field(default_factory=list)
    unrecorded: bool = False  # the block says UNRECORDED


@dataclass
class Figure:
    doc: str
    line: int
    text: str
    value: float
    tol: float
    unit: str
    records: list[str]
    match: str | None = None


def blocks(doc: str) -> list[Block]:
    """Paragraphs and tables of a Markdown file (code blocks left out); a table also carries the
    records named in the paragraph right before it."""
    out: list[Block] = []
    cur: list[str] = []
    start = 0
    fence = False

    def flush():
        nonlocal cur
        if cur:
            table = cur[0].lstrip().startswith("|")
            out.append(Block(doc, start, cur, table))
        cur = []

    for i, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
            flush()
            continue
        if fence or line.startswith("    ") and not cur:
            continue
        is_table = line.lstrip().startswith("|")
        if not line.strip() or (cur and is_table != cur[0].lstrip().startswith("|")):
            flush()
        if line.strip():
            if not cur:
                start = i
            cur.append(line)
    flush()
    for k, b in enumerate(out):
        b.records = named_records(" ".join(b.lines))
        b.unrecorded = UNRECORDED in " ".join(b.lines)
        prev = out[k - 1] if k else None
        if b.table and prev and not prev.table and prev.line + len(prev.lines) >= b.line - 1:
            b.records = sorted(set(b.records) | set(named_records(" ".join(out[k - 1].lines))))
    return out


def named_records(text: str) -> list[str]:
    """Records named in a text: file names in benchmarks/results/, and reproduction/NAME.csv."""
    found = {m for m in RECORD.findall(text) if (RESULTS / m).is_file()}
    found |= {m for m in TABLE_RECORD.findall(text) if (ROOT / m).is_file()}
    return sorted(found)


def tolerance(s: str, about: bool) -> float:
    s = s.replace(",", "")
    if "." in s:
        step = 10.0 ** -len(s.split(".")[1])
    else:
        zeros = len(s) - len(s.rstrip("0")) if len(s) > 1 else 0
        step = 10.0**zeros
    return step if about else step / 2


def numbers(obj, path: str = ""):
    """(path, value) of every number in a JSON object, including numbers inside strings."""
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, int | float):
        yield path, float(obj)
    elif isinstance(obj, str):
        for m in re.finditer(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", obj.replace(",", "")):
            try:
                yield path, float(m.group())
            except ValueError:
                pass
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numbers(v, f"{path}[{i}]")


_cache: dict[str, list] = {}


def record_numbers(name: str) -> list:
    if name not in _cache:
        if name.startswith("reproduction/"):  # a CSV table: the numbers of every cell
            rows = csv.reader(io.StringIO((ROOT / name).read_text()))
            _cache[name] = [
                (f"[{i}][{j}]", x)
                for i, row in enumerate(rows)
                for j, cell in enumerate(row)
                for _, x in numbers(cell)
            ]
        else:
            _cache[name] = list(numbers(json.loads((RESULTS / name).read_text())))
    return _cache[name]


def find(fig: Figure) -> str | None:
    for rec in fig.records:
        for path, x in record_numbers(rec):
            for f in SCALES[fig.unit]:
                if abs(x * f - fig.value) <= fig.tol * (1 + 1e-9):
                    return f"{rec}:{path}"
    return None


def figures_of(b: Block) -> tuple[list[Figure], list[Figure], list[Figure]]:
    """(figures checked against the block's records, figures in a block without records,
    figures of a block declaring UNRECORDED that no record holds)."""
    checked, orphans, declared = [], [], []
    for j, line in enumerate(b.lines):
        if b.table and (j == 0 or set(line.replace("|", "").strip()) <= set("-: ")):
            continue  # header and separator rows
        for text in line.split("|")[2:] if b.table else [line]:
            found = [(m, m.group("unit")) for m in FIGURE.finditer(text)]
            if b.table:  # bare decimals in a table cell: ratios, NRR, ms in a column "ms"
                found += [
                    (m, "")
                    for m in DECIMAL.finditer(text)
                    if not any(f.start() <= m.start() < f.end() for f, _ in found)
                ]
            for m, unit in found:
                if EXEMPT_BEFORE.search(text[: m.start()]) or (unit == "x" and m.group("sp")):
                    continue  # the paper's own figures; "1024 x 20000" is a shape
                about = bool(m.group("about"))
                for s in (m.group("a"), m.groupdict().get("b")):
                    if not s:
                        continue
                    fig = Figure(
                        b.doc,
                        b.line + j,
                        m.group().strip(),
                        float(s.replace(",", "")),
                        tolerance(s, about),
                        unit,
                        b.records,
                    )
                    if b.records:
                        fig.match = find(fig)
                        if fig.match is None and b.unrecorded:
                            declared.append(fig)
                        else:
                            checked.append(fig)
                    elif unit in ORPHAN_UNITS:
                        (declared if b.unrecorded else orphans).append(fig)
    return checked, orphans, declared


def documents() -> list[str]:
    """README.md and every Markdown page under docs/, relative to ROOT, in a fixed order."""
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / DOCS_DIR).rglob("*.md"))
    return ["README.md", *pages]


def check_all(docs=None) -> tuple[list[Figure], list[Figure], list[Figure], list[Figure]]:
    """(all checked figures, those not found in their records, figures with no record, figures
    declared without a record) of `docs` (file names relative to ROOT; default: `documents()`)."""
    docs = documents() if docs is None else docs
    checked, orphans, declared = [], [], []
    for doc in docs:
        for b in blocks(doc):
            c, o, d = figures_of(b)
            checked += c
            orphans += o
            declared += d
    return checked, [f for f in checked if f.match is None], orphans, declared


def check(docs=None) -> tuple[list[Figure], list[Figure], list[Figure]]:
    """(all checked figures, those not found in their records, figures with no record)."""
    return check_all(docs)[:3]


def main() -> int:
    verbose = "-v" in sys.argv[1:]
    checked, missing, orphans, declared = check_all()
    if verbose:
        for f in checked:
            if f.match:
                print(f"ok {f.doc}:{f.line}: {f.text!r} = {f.match}")
        for f in declared:
            print(f"declared {f.doc}:{f.line}: {f.text!r} has no record {UNRECORDED}")
    for f in missing:
        print(f"MISSING {f.doc}:{f.line}: {f.text!r} ({f.value} {f.unit}) not in {f.records}")
    for f in orphans:
        print(f"NO RECORD {f.doc}:{f.line}: {f.text!r} names no record")
    print(
        f"{len(checked)} figures checked against their records, {len(missing)} missing, "
        f"{len(orphans)} without a record ({len(declared)} declared {UNRECORDED})"
    )
    return 1 if missing or orphans else 0


if __name__ == "__main__":
    sys.exit(main())
