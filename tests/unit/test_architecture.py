"""House rules that import-linter cannot state: no module imports another's private name."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("premium_billing", "webhooks", "devtools")


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}")
    return found


def test_no_private_name_is_imported_from_another_module():
    breaches = [
        hit
        for package in PACKAGES
        if (ROOT / package).is_dir()
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in _private_imports(path)
    ]
    assert breaches == [], "make these public in their own module, or move the code"


def test_the_check_sees_a_private_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from premium_billing.payments.posting import _finish\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert _private_imports(module) == ["m.py:1 _finish"]
    finally:
        ROOT = saved
