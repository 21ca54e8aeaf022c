"""The Settings page, .env.example and abplatform/settings.py agree with the declarations in abplatform/env.py."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from functools import cache
from types import ModuleType

import pytest
from django.core.exceptions import ImproperlyConfigured

from abplatform import env as env_module
from abplatform.env import VARIABLES, Registry, Variable
from tests.support import REPO

SETTINGS_PAGE = REPO / "docs" / "reference" / "settings.md"
# A Registry method -> the kind it reads.
READERS = {
    "text": "text",
    "boolean": "boolean",
    "integer": "integer",
    "choice": "choice",
    "text_list": "list",
    "number": "number",
    "networks": "networks",
    "database": "database URL",
}


@cache
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks_under_test", REPO / "docs" / "hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_reads() -> list[tuple[str, str, bool]]:
    """(variable, reader method, whether a default is passed) for every read in abplatform/settings.py."""
    tree = ast.parse((REPO / "abplatform" / "settings.py").read_text())
    aliases = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "abplatform.env"
        for alias in node.names
        if alias.name == "VARIABLES"
    }
    assert aliases, "abplatform/settings.py no longer imports VARIABLES from abplatform.env"
    reads = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in aliases
        ):
            name = node.args[0]
            assert isinstance(name, ast.Constant), f"line {node.lineno}: name the variable literally"
            reads.append((name.value, node.func.attr, len(node.args) > 1 or bool(node.keywords)))
    return reads


def test_settings_py_reads_exactly_the_variables_declared_for_it_with_their_kind() -> None:
    reads = settings_reads()
    declared = {variable.name for variable in VARIABLES if variable.read_by == "abplatform/settings.py"}
    assert {name for name, _, _ in reads} == declared
    for name, method, _ in reads:
        assert READERS[method] == VARIABLES[name].kind, f"{name} is read with .{method}()"


def test_a_default_lives_either_in_the_declaration_or_in_settings_py_never_both() -> None:
    for name, _, passes_default in settings_reads():
        variable = VARIABLES[name]
        if passes_default:
            assert variable.default is None, f"{name}: the default is given twice"
            assert variable.default_doc, f"{name}: settings.py computes the default, so default_doc must say it"
        elif variable.default is None:
            # No default anywhere: a required text (DJANGO_SECRET_KEY in production) or an optional URL.
            assert variable.kind in ("text", "database URL"), f"{name} has no default"


def test_settings_py_reads_no_environment_variable_directly() -> None:
    source = (REPO / "abplatform" / "settings.py").read_text()
    # The one write (prometheus_client reads PROMETHEUS_MULTIPROC_DIR in every process) is allowed; no read is.
    reads = re.findall(r"os\.environ(?:\.get\(|\[[^\]]*\](?!\s*=[^=]))", source)
    assert reads == []
    assert "getenv" not in source


def test_variables_read_elsewhere_are_read_by_the_file_their_declaration_names() -> None:
    for variable in VARIABLES:
        path = REPO / variable.read_by
        assert path.is_file(), f"{variable.name}: {variable.read_by} does not exist"
        assert re.search(rf"\b{variable.name}\b", path.read_text()), f"{variable.read_by} never names {variable.name}"


def test_env_example_lists_exactly_the_declared_variables() -> None:
    text = (REPO / ".env.example").read_text()
    # Assignments, including commented-out ones (`# ABPLATFORM_CHROMIUM=...`) for variables of the tests.
    listed = re.findall(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)
    assert sorted(listed) == sorted({variable.name for variable in VARIABLES}), "or a variable is listed twice"


def test_the_settings_page_shows_every_declared_variable_once() -> None:
    page = hooks().settings_markdown(SETTINGS_PAGE.read_text())
    assert "<!-- settings:" not in page
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", page, flags=re.MULTILINE)
    assert sorted(rows) == sorted(variable.name for variable in VARIABLES)
    for variable in VARIABLES:
        row = next(line for line in page.splitlines() if line.startswith(f"| `{variable.name}` |"))
        assert variable.help in row
        assert variable.default_markdown() in row
        assert variable.values_markdown() in row
    # Each table sits under the heading of its group.
    for group in VARIABLES.groups():
        section = page.split(f"\n## {group}\n", 1)[1].split("\n## ", 1)[0]
        names = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE)
        assert names == [variable.name for variable in VARIABLES if variable.group == group]


def test_the_page_names_every_boolean_spelling_the_reader_accepts() -> None:
    page = SETTINGS_PAGE.read_text()
    for spelling in (*env_module._TRUE, *env_module._FALSE):
        assert f"`{spelling}`" in page


def test_a_group_without_its_marker_fails_the_build() -> None:
    page = SETTINGS_PAGE.read_text().replace("<!-- settings: Django -->", "")
    with pytest.raises(ValueError, match=r"groups without a table \['Django'\]"):
        hooks().settings_markdown(page)
    with pytest.raises(ValueError, match=r"no variable of abplatform/env\.py is in that group"):
        hooks().settings_table("Nonexistent")


def test_the_hook_renders_the_page_without_django_settings() -> None:
    # In a fresh interpreter: neither the settings (which would start the embedded PostgreSQL) nor the
    # abplatform package (which imports Celery) is imported.
    script = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('hooks', 'docs/hooks.py')\n"
        "hooks = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(hooks)\n"
        "page = hooks.settings_markdown(open('docs/reference/settings.md').read())\n"
        "assert '| `DATABASE_URL` |' in page\n"
        "print(sorted(name for name in sys.modules if name.startswith(('abplatform', 'celery', 'django.conf'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


REGISTRY = Registry(
    [
        Variable("FIXED", "G", "integer", "a number", default=5, minimum=1),
        Variable("COMPUTED", "G", "boolean", "a switch", default_doc="depends"),
        Variable("LEVEL", "G", "choice", "a level", default="low", choices=("low", "high")),
        Variable("REQUIRED", "G", "text", "a secret"),
    ]
)


def test_readers_use_the_declaration_default_and_bounds() -> None:
    assert REGISTRY.integer("FIXED", environ={}) == 5
    with pytest.raises(ImproperlyConfigured, match="FIXED=0 is below the minimum 1"):
        REGISTRY.integer("FIXED", environ={"FIXED": "0"})
    assert REGISTRY.boolean("COMPUTED", True, environ={}) is True
    with pytest.raises(ImproperlyConfigured, match="use one of low, high"):
        REGISTRY.choice("LEVEL", environ={"LEVEL": "medium"})
    with pytest.raises(ImproperlyConfigured, match="Set the environment variable REQUIRED"):
        REGISTRY.text("REQUIRED", environ={})


def test_readers_refuse_undeclared_variables_other_kinds_and_defaults_given_twice() -> None:
    with pytest.raises(ImproperlyConfigured, match="UNKNOWN is read but not declared"):
        REGISTRY.text("UNKNOWN", "x", environ={})
    with pytest.raises(ImproperlyConfigured, match="FIXED is declared as integer but read as boolean"):
        REGISTRY.boolean("FIXED", environ={})
    with pytest.raises(ImproperlyConfigured, match="FIXED has a default in its declaration and from its reader"):
        REGISTRY.integer("FIXED", 7, environ={})
    with pytest.raises(ImproperlyConfigured, match="COMPUTED has no default bool"):
        REGISTRY.boolean("COMPUTED", environ={})
    with pytest.raises(ValueError, match="declared twice"):
        Registry([Variable("A", "G", "text", "x"), Variable("A", "G", "text", "y")])
