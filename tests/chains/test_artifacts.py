"""The committed artifacts are what the sources compile to: a change to the contract, to the
OpenZeppelin files it uses, or to the compiler without a rebuild fails here."""

from __future__ import annotations

import hashlib
import json
import subprocess

from tests.conftest import ROOT

ARTIFACT = ROOT / "contracts" / "artifacts" / "IssuerToken.json"


def _source_path(unit: str):
    return ROOT / "node_modules" / unit if unit.startswith("@openzeppelin/") else ROOT / unit


def test_the_artifact_hashes_are_those_of_the_sources_on_disk():
    artifact = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    assert "contracts/IssuerToken.sol" in artifact["sources"]
    assert any(unit.startswith("@openzeppelin/contracts/") for unit in artifact["sources"])
    on_disk = {unit: hashlib.sha256(_source_path(unit).read_bytes()).hexdigest() for unit in artifact["sources"]}
    assert on_disk == artifact["sources"], "a source changed since the artifacts were built: node contracts/build.mjs"
    combined = "".join(f"{unit}\n{on_disk[unit]}\n" for unit in sorted(on_disk))
    assert hashlib.sha256(combined.encode()).hexdigest() == artifact["sourcesSha256"]


def test_the_artifact_names_the_pinned_compiler_and_openzeppelin():
    artifact = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    pins = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]
    assert artifact["compiler"]["version"].startswith(pins["solc"] + "+")
    assert artifact["openzeppelinVersion"] == pins["@openzeppelin/contracts"]
    assert artifact["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    assert artifact["bytecode"].startswith("0x60") and artifact["abi"]


def test_a_fresh_build_reproduces_the_committed_artifacts_byte_for_byte():
    result = subprocess.run(["node", "contracts/build.mjs", "--check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
