"""`make install` runs `npm ci`, which installs exactly package-lock.json and refuses a lockfile that does not
match package.json. It can do so on any machine only if the lockfile lists every platform's variant of a
package that ships per-platform binaries (anvil does, as optional dependencies): a lockfile generated where
only this platform's binary was available would make `npm ci` fail, or `npm install` rewrite it, elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lock() -> dict:
    return json.loads((ROOT / "package-lock.json").read_text())


def test_every_optional_platform_package_is_locked_with_its_integrity():
    packages = _lock()["packages"]
    with_platforms = {path: entry for path, entry in packages.items() if entry.get("optionalDependencies")}
    assert "node_modules/@foundry-rs/anvil" in with_platforms
    for path, entry in with_platforms.items():
        for name, version in entry["optionalDependencies"].items():
            locked = packages.get(f"node_modules/{name}")
            assert locked is not None, f"{path} lists {name} but the lockfile does not lock it"
            assert locked["version"] == version, f"{name}: locked {locked['version']}, wanted {version}"
            assert locked.get("integrity", "").startswith("sha512-"), f"{name} is locked without its integrity"
            assert locked.get("os") or locked.get("cpu"), f"{name} is not marked with its platform"


def test_the_lockfile_locks_what_package_json_asks_for():
    manifest = json.loads((ROOT / "package.json").read_text())
    lock = _lock()
    root = lock["packages"][""]
    assert root.get("devDependencies", {}) == manifest.get("devDependencies", {})
    assert root.get("dependencies", {}) == manifest.get("dependencies", {})
    for name, version in {**manifest.get("dependencies", {}), **manifest.get("devDependencies", {})}.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name

