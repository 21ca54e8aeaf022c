"""MkDocs hooks (mkdocs.yml `hooks:`), run when the site is built; nothing here needs the internet.

* The Benchmarks page gets its tables from bench/results/*.json at build time (bench/report.py
  renders them), so it always shows the latest recorded run of each benchmark with its command,
  machine and date: `<!-- benchmarks -->` in docs/benchmarks.md is replaced by them.
* CHANGELOG.md lives at the repository root, where people look for it; it is added to the site as
  changelog.md. Pages link to it as `../CHANGELOG.md` (valid when the Markdown is read on its own,
  e.g. on GitHub), and those links are pointed at the site's copy when the site is built.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- benchmarks -->"
CHANGELOG_LINK = re.compile(r"\]\(((?:\.\./)+)CHANGELOG\.md(#[^)]*)?\)")


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "changelog.md", content=(ROOT / "CHANGELOG.md").read_text()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    # One "../" leaves docs/ for the repository root; inside the site the copy sits at the docs root.
    markdown = CHANGELOG_LINK.sub(lambda m: f"]({m.group(1)[3:]}changelog.md{m.group(2) or ''})", markdown)
    if MARKER not in markdown:
        return markdown
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.report import benchmarks_markdown

    return markdown.replace(MARKER, benchmarks_markdown())
