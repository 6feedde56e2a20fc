"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`; not a page of the site).

The notebooks (`notebooks/*.py`, jupytext percent format), the reproduction's figures
(`reproduction/figures/*.png`) and the leaderboard's (`benchmarks/results/leaderboard/*.png`)
live outside `docs/`; they are added to the site's files under the same paths,
`notebooks/NN_name.py`, `reproduction/figures/NAME.png`, ..., before mkdocs-jupyter turns the
notebooks into pages (its `on_files` runs at the default priority, this one earlier).
So there is one copy of each, and `mkdocs build --strict` checks the links to them.
`ListsAfterParagraphs`, a griffe extension, lets the docstrings' lists render as lists.

The notebooks run at their CI scale in the site (`OJRS_NB_SCALE=ci`, seconds each, instead of
the paper-sized demo of several minutes) unless OJRS_NB_SCALE is set; execution itself is
switched by OJRS_DOCS_EXECUTE (mkdocs.yml).
"""

from __future__ import annotations

import os
from pathlib import Path

from griffe import Extension
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = (
    ("notebooks", "[0-9][0-9]_*.py"),
    ("reproduction/figures", "*.png"),
    ("benchmarks/results/leaderboard", "*.png"),
)


def on_startup(command, dirty):
    os.environ.setdefault("OJRS_NB_SCALE", "ci")


@event_priority(100)
def on_files(files, config):
    for folder, pattern in OUTSIDE:
        for path in sorted((ROOT / folder).glob(pattern)):
            rel = path.relative_to(ROOT).as_posix()
            files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


class ListsAfterParagraphs(Extension):
    """A griffe extension (mkdocs.yml, mkdocstrings' `extensions`): the docstrings of src/ write
    a list right below its lead-in line ("... of an epoch's problem:\\n- `state=channel`: ..."),
    which Markdown reads as one paragraph; a blank line before such a list makes it a list. The
    docstrings themselves are unchanged."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = blank_line_before_lists(obj.docstring.value)


def blank_line_before_lists(text: str) -> str:
    """`text` with a blank line inserted before every "- " item that follows a line of prose
    (not another item, nor the indented continuation of one)."""
    out: list[str] = []
    in_list = False
    for line in text.splitlines():
        item = line.lstrip().startswith("- ")
        if item and out and out[-1].strip() and not in_list:
            out.append("")
        if item:
            in_list = True
        elif not line.strip() or not line.startswith(" "):
            in_list = False
        out.append(line)
    return "\n".join(out)
