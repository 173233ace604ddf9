"""chains executes operations and reports outcomes; it never imports mint_redeem (architecture
section 2: mint_redeem -> chains -> custody -> compliance -> ledger)."""

from __future__ import annotations

import ast

from tests.conftest import ROOT


def test_chains_never_imports_mint_redeem():
    offenders = []
    for path in sorted((ROOT / "chains").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                          if name.split(".")[0] == "mint_redeem"]
    assert offenders == []
