"""The vendored browser files are exactly those listed in vendor.json, at the versions deploy/vendor-ui.py pins."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bodhi_api.ui import STATIC_DIR

VENDOR_DIR = STATIC_DIR / "vendor"
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "vendor-ui.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_ui", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def listed_packages() -> dict[str, Any]:
    packages: dict[str, Any] = json.loads((VENDOR_DIR / "vendor.json").read_text())["packages"]
    return packages


def test_every_vendored_file_matches_its_sha256() -> None:
    for package, entry in listed_packages().items():
        for name, sha256 in entry["files"].items():
            assert hashlib.sha256((VENDOR_DIR / name).read_bytes()).hexdigest() == sha256, f"{package}: {name}"


def test_no_file_is_vendored_without_being_listed() -> None:
    listed = {name for entry in listed_packages().values() for name in entry["files"]}
    on_disk = {p.relative_to(VENDOR_DIR).as_posix() for p in VENDOR_DIR.rglob("*") if p.is_file()} - {"vendor.json"}
    assert on_disk == listed


def test_the_listing_has_the_versions_the_script_pins() -> None:
    script = load_script()
    pinned = {pin.package: (pin.version, len(pin.files)) for pin in script.PINS}
    listed = {package: (entry["version"], len(entry["files"])) for package, entry in listed_packages().items()}
    assert listed == pinned
    assert script.verify(VENDOR_DIR) == []


def test_a_tarball_that_does_not_match_the_registry_integrity_is_refused() -> None:
    script = load_script()
    tarball = b"a tarball"
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    script.check_integrity(tarball, integrity, what="x@1")
    with pytest.raises(SystemExit, match="does not match"):
        script.check_integrity(tarball + b"!", integrity, what="x@1")
