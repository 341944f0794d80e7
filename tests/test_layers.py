"""The layering contract from STYLE.md, checked over every import in the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = ("miniprogram_api", "wecom", "app.console", "app.partner_api")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_files(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def touches(names: set[str], forbidden: str) -> bool:
    return any(name == forbidden or name.startswith(forbidden + ".") for name in names)


@pytest.mark.parametrize("path", module_files("app.services"), ids=str)
def test_services_know_nothing_of_http_or_entry_points(path: Path) -> None:
    names = imports_of(path)
    for forbidden in ("flask", "werkzeug.wrappers", *ENTRY_POINTS, "app.sandbox"):
        assert not touches(names, forbidden), f"{path} imports {forbidden}"


@pytest.mark.parametrize("path", module_files("app.models"), ids=str)
def test_models_do_not_import_services(path: Path) -> None:
    assert not touches(imports_of(path), "app.services")


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_entry_points_do_not_import_each_other(entry_point: str) -> None:
    others = [other for other in ENTRY_POINTS if other != entry_point]
    for path in module_files(entry_point):
        names = imports_of(path)
        for other in others:
            assert not touches(names, other), f"{path} imports {other}"


def test_only_tests_and_the_dev_server_use_the_sandbox() -> None:
    allowed = {ROOT / "scripts" / "dev_server.py", ROOT / "scripts" / "soak.py"}
    for package in ("app", "miniprogram_api", "wecom", "scripts"):
        for path in module_files(package):
            if path in allowed or (ROOT / "app" / "sandbox") in path.parents:
                continue
            assert not touches(imports_of(path), "app.sandbox"), f"{path} imports the sandbox"


def test_the_sandbox_stands_alone() -> None:
    for path in module_files("app.sandbox"):
        names = {name for name in imports_of(path) if name.startswith("app.")}
        assert all(name.startswith("app.sandbox") for name in names), (path, names)
