"""One owner per idea, checked on the source: only db.lifecycle writes jobs, images, artefacts; core never looks up."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = ("api", "core", "db", "worker", "client", "cli", "bench", "scripts")
TABLES = {"Job", "Image", "Artefact"}
# Columns that record where a job, image or webhook delivery stands: set only by db.lifecycle.
STATE_COLUMNS = {
    "state",
    "status",
    "queued_at",
    "running_at",
    "completed_at",
    "failed_at",
    "cancelling_at",
    "cancelled_at",
    "enqueued_at",
    "claimed_at",
    "claimed_by",
    "attempts",
    "reproducibility",
    "webhook_state",
    "webhook_attempts",
    "webhook_error",
    "webhook_delivered_at",
    "webhook_claimed_at",
}


def _modules(*folders: str) -> list[Path]:
    return [path for folder in folders for path in sorted((REPO / folder).rglob("*.py"))]


def _table_names(tree: ast.AST) -> set[str]:
    """The names the module gives the Job and Image table models (imported from db.models, or its own)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "imagebatch.db.models":
            names |= {alias.asname or alias.name for alias in node.names if alias.name in TABLES}
        if isinstance(node, ast.ClassDef) and node.name in TABLES:
            names.add(node.name)
    return names


def _writes(tree: ast.AST) -> list[str]:
    """update/insert/delete statements on Job or Image, Job/Image rows built as objects, state attributes set."""
    tables, found = _table_names(tree), []
    for node in ast.walk(tree):
        if tables and isinstance(node, (ast.Assign, ast.AugAssign)):  # a module holding Job/Image rows
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(part, ast.Attribute) and part.attr in STATE_COLUMNS:
                        found.append(f"line {node.lineno}: .{part.attr} = ...")
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        first = node.args[0] if node.args else None
        if name in ("update", "insert", "delete") and isinstance(first, ast.Name) and first.id in tables:
            found.append(f"line {node.lineno}: {name}({first.id})")
        if name in tables:
            found.append(f"line {node.lineno}: {name}(...)")
    return found


def test_only_db_lifecycle_writes_job_and_image_rows():
    lifecycle = REPO / "db" / "lifecycle"
    offenders = {
        str(path.relative_to(REPO)): writes
        for path in _modules(*SOURCE)
        if lifecycle not in path.parents and (writes := _writes(ast.parse(path.read_text())))
    }
    assert offenders == {}
    assert _writes(ast.parse((lifecycle / "chunks.py").read_text()))  # the check does see writes


def test_core_imports_nothing_above_it():
    above = ("imagebatch.db", "imagebatch.api", "imagebatch.worker", "imagebatch.client", "imagebatch.cli")
    offenders = []
    for path in _modules("core"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            offenders += [f"{path.name}: {name}" for name in names if name.startswith(above)]
    assert offenders == []
