"""Import layering: command modules are leaves (docs/architecture.md).

A command module defines ``add_arguments`` and ``main``; only ``nmt/cli.py`` imports one.
Library modules never import a command module, and commands never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

from nmt.cli import COMMANDS

PACKAGE = Path(__file__).resolve().parent.parent / "nmt"
ENTRY_POINTS = {"nmt.cli", "nmt.__main__"}


def parse_package(root: Path = PACKAGE) -> dict[str, ast.Module]:
    modules = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = ast.parse(path.read_text(encoding="utf-8"))
    return modules


def is_command(tree: ast.Module) -> bool:
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    return {"add_arguments", "main"} <= functions


def imported_names(tree: ast.Module) -> set[str]:
    """Every module (or ``module.name``) an import statement anywhere in ``tree`` names."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layering_violations(modules: dict[str, ast.Module]) -> list[str]:
    commands = {name for name, tree in modules.items() if is_command(tree)}
    violations = []
    for name, tree in sorted(modules.items()):
        if name in ENTRY_POINTS:
            continue
        for imported in sorted(imported_names(tree) & commands - {name}):
            kind = "command" if name in commands else "library module"
            violations.append(f"{kind} {name} imports command {imported}")
    return violations


def test_commands_are_leaves() -> None:
    assert layering_violations(parse_package()) == []


def test_every_command_is_a_thin_module_under_commands() -> None:
    modules = parse_package()
    commands = {name for name, tree in modules.items() if is_command(tree)}
    assert commands == {module for module, _ in COMMANDS.values()}
    assert all(name.startswith("nmt.commands.") for name in commands)


def test_the_check_finds_a_library_or_command_importing_a_command() -> None:
    """The checker itself can fail: a library module and a command importing commands."""
    command = ast.parse("def add_arguments(parser): ...\ndef main(args): ...")
    modules = {
        "nmt.commands.translate": command,
        "nmt.commands.evaluate": ast.parse(
            "from nmt.commands.translate import main\ndef add_arguments(p): ...\ndef main(a): ..."
        ),
        "nmt.training": ast.parse("def f():\n    import nmt.commands.translate"),
        "nmt.cli": ast.parse("import nmt.commands.translate"),  # the dispatcher may
    }
    assert layering_violations(modules) == [
        "command nmt.commands.evaluate imports command nmt.commands.translate",
        "library module nmt.training imports command nmt.commands.translate",
    ]
