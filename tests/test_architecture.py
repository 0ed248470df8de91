"""The layout is the map: concept packages, import layers, small modules (ARCHITECTURE.md says why)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("annotator", "db", "worker", "migrations")

# A layer may import itself and the layers before it, never one after it.
LAYERS = ["annotator", "db", "images", "models", "faces", "training", "jobs", "teachers", "exports", "labels", "inspection", "cli"]
MAX_LINES = 400
MAX_TOP_LEVEL_MODULES = 6


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _layer(module: str) -> str | None:
    """The layer of a dotted module name: `annotator.jobs.pipeline` -> `jobs`, `annotator.settings` -> `annotator`."""
    parts = module.split(".")
    if parts[0] == "db":
        return "db"
    if parts[0] != "annotator":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS[2:] else "annotator"


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at its top or inside functions, with the line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_layer_imports_only_the_layers_before_it():
    problems = []
    for path in _modules():
        importer = _dotted(path)
        own = _layer(importer)
        for line, imported in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line} imports {imported}"
            target = _layer(imported)
            if imported.split(".")[0] == "worker":
                # The Celery app is started by `annotate worker` and sent tasks by the job orchestration only.
                if importer not in ("annotator.cli.worker", "annotator.jobs.orchestration", "worker") and \
                        not importer.startswith("worker."):
                    problems.append(where)
            elif importer.startswith(("worker", "migrations")):
                if target == "cli":
                    problems.append(where)
            elif own == "db":
                if target not in (None, "db") and imported != "annotator.settings":
                    problems.append(where)
            elif own is not None and target is not None and LAYERS.index(target) > LAYERS.index(own):
                problems.append(where)
    assert not problems, "imports against the layers of ARCHITECTURE.md:\n" + "\n".join(problems)


def test_no_module_is_over_the_line_limit():
    long = [f"{path.relative_to(ROOT)}: {n} lines" for path in _modules() + sorted((ROOT / "tests").rglob("*.py"))
            if (n := len(path.read_text().splitlines())) > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)


def test_the_top_of_annotator_holds_only_packages_and_a_few_shared_modules():
    top = sorted(path.name for path in (ROOT / "annotator").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    packages = sorted(path.name for path in (ROOT / "annotator").iterdir() if (path / "__init__.py").exists())
    assert set(LAYERS[2:]) <= set(packages), packages


def test_every_package_says_what_it_owns():
    silent = [str(init.relative_to(ROOT)) for init in (ROOT / "annotator").rglob("__init__.py")
              if ast.get_docstring(ast.parse(init.read_text())) is None]
    assert not silent, silent


def test_no_two_modules_of_a_package_differ_only_by_a_suffix():
    clashes = []
    for package in {path.parent for path in _modules()}:
        names = sorted(path.stem for path in package.glob("*.py") if path.stem != "__init__")
        for name in names:
            clashes += [f"{package.relative_to(ROOT)}: {name} / {other}" for other in names
                        if other != name and other.startswith(name) and len(other) - len(name) <= 3]
    assert not clashes, clashes
