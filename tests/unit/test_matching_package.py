"""The matching package's shape: pure, no import cycle inside it, no private name shared
between its modules, every score named in `scores` (none inline in the rules or the
decision), and the public API re-exported by `__init__`."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import premium_billing.reconciliation.matching as matching

PACKAGE = "premium_billing.reconciliation.matching"
HERE = Path(matching.__file__).parent
MODULES = {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(HERE.glob("*.py"))}
# What the engine may import besides the standard library and itself: small pure libraries
# and the pure billing rules.
ALLOWED = ("rapidfuzz", "stdnum", "premium_billing.invoicing.rules", "premium_billing.money",
           "premium_billing.errors", PACKAGE)  # fmt: skip
FRAMEWORKS = ("flask", "flask_smorest", "sqlalchemy", "marshmallow", "stripe")


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) of every import statement, at any depth."""
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "absolute imports only"
            assert node.module is not None
            out.append((node.module, [alias.name for alias in node.names]))
    return out


def _internal_edges(name: str) -> set[str]:
    """The package's modules that module `name` imports."""
    edges: set[str] = set()
    for module, names in _imports(MODULES[name]):
        if module == PACKAGE:
            edges.update(n for n in names if n in MODULES)
            # Names of the package itself (its __init__) are the public API, not for its own
            # modules: a module importing them would import the package's every module.
            assert all(n in MODULES for n in names), f"{name} imports {names} from __init__"
        elif module.startswith(PACKAGE + "."):
            edges.add(module.removeprefix(PACKAGE + "."))
    return edges


def test_the_package_is_split_into_its_modules() -> None:
    expected = {"scores", "types", "normalise", "similarity", "index", "plans", "rules",
                "candidates", "decide"}  # fmt: skip
    assert set(MODULES) == expected | {"__init__"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_standard_library_and_pure_libraries_are_imported(name: str) -> None:
    for module, _ in _imports(MODULES[name]):
        top = module.split(".")[0]
        ok = top in sys.stdlib_module_names or module == "__future__"
        ok = ok or any(module == a or module.startswith(a + ".") for a in ALLOWED)
        assert ok, f"{name} imports {module}"


def test_importing_the_package_loads_no_framework() -> None:
    # premium_billing/__init__.py itself imports Flask (create_app): what the matching
    # package loads is what is new after its parent packages.
    code = (
        "import sys, premium_billing.reconciliation\n"
        "before = set(sys.modules)\n"
        f"import {PACKAGE}\n"
        "new = set(sys.modules) - before\n"
        f"assert {PACKAGE!r} in new\n"
        f"print(' '.join(m for m in new if m.split('.')[0] in {FRAMEWORKS!r}"
        " or m.startswith(('premium_billing.db', 'premium_billing.http'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_is_imported(name: str) -> None:
    for module, names in _imports(MODULES[name]):
        private = [n for n in names if n.startswith("_") and module != "__future__"]
        assert not private, f"{name} imports {private} from {module}"


def test_no_import_cycle_inside_the_package() -> None:
    graph = {name: _internal_edges(name) for name in MODULES if name != "__init__"}
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle: " + " -> ".join((*path, name))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, (*path, name))
        done.add(name)
        order.append(name)

    for name in sorted(graph):
        visit(name, ())
    assert "__init__" not in {e for edges in graph.values() for e in edges}


@pytest.mark.parametrize("name", ["rules", "decide", "plans", "candidates"])
def test_no_inline_score_in_the_rules_plans_candidates_or_decision(name: str) -> None:
    numbers = {
        node.value
        for node in ast.walk(MODULES[name])
        if isinstance(node, ast.Constant) and type(node.value) in (int, float)
    }
    assert not any(isinstance(n, float) for n in numbers), f"{name}: {sorted(numbers)}"
    assert numbers <= {0, 1, 2}, f"{name}: {sorted(numbers)}"  # counting, not scoring


def test_every_score_constant_says_what_it_means() -> None:
    text = (HERE / "scores.py").read_text(encoding="utf-8")
    constants = re.findall(r"^([A-Z][A-Z_]*) = (.*)$", text, flags=re.M)
    assert len(constants) >= 20
    for name, rest in constants:
        assert "  # " in rest, f"{name} has no comment"


def test_the_public_api_is_re_exported() -> None:
    used_elsewhere = {
        "CandidateIndex", "MatchDecision", "MatchSettings", "OpenInvoice", "PayerLink",
        "PaymentFacts", "Policyholder", "match_payment", "name_similarity", "name_tokens",
        "normalize_account", "normalize_name",
    }  # fmt: skip
    assert used_elsewhere <= set(matching.__all__)
    for name in matching.__all__:
        assert getattr(matching, name) is not None
