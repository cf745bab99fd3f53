"""Fetch the web UI's third-party browser files, pinned, from the npm registry, and list them in ``vendor.json``.

Run from the repository root (Python's standard library only, no Node):

    python3 deploy/vendor-ui.py            # (re)fetch every pinned file and rewrite vendor.json
    python3 deploy/vendor-ui.py --verify   # offline: check the files on disk against vendor.json

Each package's tarball comes from the registry's own metadata for that exact version and is checked against the
registry's ``dist.integrity`` (SHA-512) before anything is extracted; only the files named in ``PINS`` are taken,
byte for byte, together with the package's licence. ``vendor.json`` records, per package, its version, tarball URL
and integrity, and each file's SHA-256; ``tests/ui/test_vendor.py`` checks the files against it. To upgrade a
library, change its version in ``PINS``, run this script, and look at the diff.

The files are served as they are (no bundler, no CDN): a self-hosted gateway may be air-gapped.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = Path(__file__).resolve().parent.parent / "services/api/src/bodhi_api/ui/static/vendor"
LISTING = "vendor.json"


@dataclass(frozen=True)
class Pin:
    package: str
    version: str
    folder: str  # under vendor/
    files: tuple[str, ...]  # paths inside the tarball's package/ folder; each is stored under its base name


PINS = (
    Pin("marked", "18.2.1", "marked", ("lib/marked.umd.js", "LICENSE")),
    Pin("dompurify", "3.5.0", "dompurify", ("dist/purify.min.js", "LICENSE")),
    # The CDN build: one browser file with highlight.js's "common" languages, and the a11y themes, chosen because
    # they meet WCAG AA contrast, in light and dark.
    Pin(
        "@highlightjs/cdn-assets",
        "11.12.0",
        "highlight",
        ("highlight.min.js", "styles/a11y-light.min.css", "styles/a11y-dark.min.css", "LICENSE"),
    ),
    Pin("uplot", "1.6.32", "uplot", ("dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE")),
    # Used by the browser tests' accessibility check; shipped like the others so the tests need no network.
    Pin("axe-core", "4.14.1", "axe-core", ("axe.min.js", "LICENSE")),
)


def fetch(url: str) -> bytes:
    if not url.startswith("https://"):
        raise SystemExit(f"refusing to fetch {url}: only https")
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310  # https only, checked above
        body: bytes = response.read()
    return body


def check_integrity(tarball: bytes, integrity: str, *, what: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise SystemExit(f"{what}: unexpected integrity algorithm {algorithm!r}")
    if base64.b64encode(hashlib.sha512(tarball).digest()).decode() != expected:
        raise SystemExit(f"{what}: the tarball does not match the registry's integrity {integrity}")


def vendor_package(pin: Pin, vendor_dir: Path) -> dict[str, Any]:
    """Download ``pin``'s tarball, check it, extract its pinned files; return its entry in vendor.json."""
    what = f"{pin.package}@{pin.version}"
    metadata = json.loads(fetch(f"{REGISTRY}/{urllib.parse.quote(pin.package, safe='@')}/{pin.version}"))
    dist = metadata["dist"]
    tarball = fetch(dist["tarball"])
    check_integrity(tarball, dist["integrity"], what=what)
    folder = vendor_dir / pin.folder
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member_path in pin.files:
            member = archive.extractfile(f"package/{member_path}")  # one named regular file: no path traversal
            if member is None:
                raise SystemExit(f"{what}: {member_path} is not a regular file")
            data = member.read()
            name = f"{pin.folder}/{Path(member_path).name}"
            (vendor_dir / name).write_bytes(data)
            files[name] = hashlib.sha256(data).hexdigest()
            print(f"  {name}  {len(data):>8} bytes")
    return {"version": pin.version, "tarball": dist["tarball"], "integrity": dist["integrity"], "files": files}


def verify(vendor_dir: Path) -> list[str]:
    """What differs between the files on disk and vendor.json (empty when they match)."""
    listing = json.loads((vendor_dir / LISTING).read_text())
    problems = []
    for package, entry in listing["packages"].items():
        for name, sha256 in entry["files"].items():
            path = vendor_dir / name
            if not path.is_file():
                problems.append(f"{package}: {name} is missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
                problems.append(f"{package}: {name} does not match its sha256 {sha256}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verify", action="store_true", help="only check the files against vendor.json")
    parser.add_argument("--vendor-dir", type=Path, default=VENDOR_DIR)
    args = parser.parse_args()
    if args.verify:
        problems = verify(args.vendor_dir)
        print("\n".join(problems) or "every vendored file matches vendor.json")
        return 1 if problems else 0
    packages = {}
    for pin in PINS:
        print(f"{pin.package}@{pin.version}")
        packages[pin.package] = vendor_package(pin, args.vendor_dir)
    listing = {"generated_by": "deploy/vendor-ui.py", "registry": REGISTRY, "packages": packages}
    (args.vendor_dir / LISTING).write_text(json.dumps(listing, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
