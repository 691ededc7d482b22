"""The package's shape: imports run one way (data, then models, then training and decoding side by side, then the
model directory and the Python API, the command lines and benches on top; every import, those inside functions
too), and no module or test file grows past 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "asr"

# importer prefix -> what it must never import
FORBIDDEN = {
    "asr.models": ("asr.training", "asr.decoding", "asr.data", "asr.modeldir", "asr.transcriber"),
    "asr.decoding": ("asr.training", "asr.modeldir", "asr.transcriber"),
    "asr.data": ("asr.models", "asr.decoding", "asr.training", "asr.modeldir", "asr.transcriber"),
    "asr.training": ("asr.modeldir", "asr.transcriber"),
    "asr.frontend": ("asr.models", "asr.decoding", "asr.training", "asr.data", "asr.modeldir"),
    "asr.weights": ("asr.models", "asr.decoding", "asr.training", "asr.data", "asr.modeldir"),
    "asr.textfile": ("asr.models", "asr.decoding", "asr.training", "asr.data", "asr.modeldir"),
}
TOP = ("asr.cli", "asr.bench")  # nothing outside each of these imports it


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved; `from X import y` gives X and
    X.y, since y may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "asr" or m.startswith("asr.")}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_resolves_relative_imports():
    streaming = imports_of(PACKAGE / "decoding" / "streaming.py")
    assert "asr.models.attention.monotonic" in streaming
    assert "asr.frontend" in streaming


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path):
    name = module_name(path)
    wrong = []
    for imported in sorted(imports_of(path)):
        for importer, banned in FORBIDDEN.items():
            if within(name, importer):
                wrong += [imported for b in banned if within(imported, b)]
        wrong += [imported for top in TOP if within(imported, top) and not within(name, top)]
    assert not wrong, f"{name} imports {sorted(set(wrong))}"


def test_no_module_over_400_lines():
    files = [*MODULES, *sorted(Path(__file__).parent.glob("*.py"))]  # the tests too
    long = {str(p.relative_to(PACKAGE.parent)): n for p in files if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these by concern: {long}"
