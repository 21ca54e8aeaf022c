"""MkDocs hooks (mkdocs.yml `hooks:`), run when the site is built; nothing here needs the internet.

* The Benchmarks page gets its tables from bench/results/*.json at build time (bench/report.py
  renders them), so it always shows the latest recorded run of each benchmark with its command,
  machine and date: `<!-- benchmarks -->` in docs/benchmarks.md is replaced by them.
* CHANGELOG.md lives at the repository root, where people look for it; it is added to the site as
  changelog.md. Pages link to it as `../CHANGELOG.md` (valid when the Markdown is read on its own,
  e.g. on GitHub), and those links are pointed at the site's copy when the site is built.
* The Settings page's tables come from the declarations in abplatform/env.py (`VARIABLES`, which
  abplatform/settings.py reads through): `<!-- settings: GROUP -->` in docs/reference/settings.md is
  replaced by the table of that group's variables. Only abplatform/env.py is loaded (by its path, not
  as part of the `abplatform` package): Django settings are never imported, so no database starts.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- benchmarks -->"
CHANGELOG_LINK = re.compile(r"\]\(((?:\.\./)+)CHANGELOG\.md(#[^)]*)?\)")
SETTINGS_MARKER = re.compile(r"^<!-- settings: (?P<group>[^>]+?) -->$", re.MULTILINE)


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "changelog.md", content=(ROOT / "CHANGELOG.md").read_text()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    # One "../" leaves docs/ for the repository root; inside the site the copy sits at the docs root.
    markdown = CHANGELOG_LINK.sub(lambda m: f"]({m.group(1)[3:]}changelog.md{m.group(2) or ''})", markdown)
    if SETTINGS_MARKER.search(markdown):
        markdown = settings_markdown(markdown)
    if MARKER not in markdown:
        return markdown
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.report import benchmarks_markdown

    return markdown.replace(MARKER, benchmarks_markdown())


@cache
def env_module() -> ModuleType:
    """abplatform/env.py alone: it needs Django's exceptions, never the settings or the package."""
    spec = importlib.util.spec_from_file_location("_abplatform_env_for_docs", ROOT / "abplatform" / "env.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot load {ROOT / 'abplatform' / 'env.py'}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def settings_table(group: str) -> str:
    """The Markdown table of one group of declared variables, in their declared order."""
    variables = [variable for variable in env_module().VARIABLES if variable.group == group]
    if not variables:
        raise ValueError(f"<!-- settings: {group} -->: no variable of abplatform/env.py is in that group.")
    rows = ["| variable | values | default | |", "|---|---|---|---|"]
    for variable in variables:
        cells = (f"`{variable.name}`", variable.values_markdown(), variable.default_markdown(), variable.help)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def settings_markdown(markdown: str) -> str:
    """The page with each `<!-- settings: GROUP -->` replaced by its table; every group must be placed once."""
    placed = SETTINGS_MARKER.findall(markdown)
    groups = env_module().VARIABLES.groups()
    missing = [group for group in groups if group not in placed]
    twice = sorted({group for group in placed if placed.count(group) > 1})
    if missing or twice:
        raise ValueError(f"docs/reference/settings.md: groups without a table {missing}, placed twice {twice}.")
    return SETTINGS_MARKER.sub(lambda match: settings_table(match.group("group")), markdown)
