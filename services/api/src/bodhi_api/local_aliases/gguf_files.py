"""Finding GGUF files (``BODHI_HOME/models`` and the HuggingFace cache layout) and checking that they are GGUF."""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
# The quantisation a file name carries, e.g. llama-3.2-1b-instruct.Q4_K_M.gguf -> Q4_K_M.
_QUANT = re.compile(r"(?i)(?:^|[.\-_])((?:IQ|Q)\d(?:_[A-Z0-9]+)*|BF16|F16|F32)(?=\.gguf$)")


class NotGguf(ValueError):
    """The file is missing or is not a GGUF model; the message says which."""


def check_gguf(path: Path) -> None:
    """Raise ``NotGguf`` unless ``path`` is a readable GGUF file of a supported version."""
    try:
        found = path.is_file()
    except OSError as exc:  # a directory on the way that may not be read, a name too long: the caller's path
        raise NotGguf(f"{path} cannot be looked at ({exc.strerror or type(exc).__name__})") from None
    if not found:
        raise NotGguf(f"no file at {path}")
    try:
        with path.open("rb") as file:
            header = file.read(8)
    except OSError as exc:
        raise NotGguf(f"{path} cannot be read ({exc.strerror})") from None
    if len(header) < 8 or header[:4] != GGUF_MAGIC:
        raise NotGguf(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    (version,) = struct.unpack("<I", header[4:8])
    if version not in SUPPORTED_VERSIONS:
        raise NotGguf(f"{path} is GGUF version {version}; supported versions are {SUPPORTED_VERSIONS}")


def hf_hub_dir() -> Path:
    home = os.environ.get("HF_HOME")
    return Path(home) / "hub" if home else Path.home() / ".cache" / "huggingface" / "hub"


def find_in_hf_cache(repo: str, filename: str) -> Path | None:
    """``$HF_HOME/hub/models--{owner}--{repo}/snapshots/{sha}/{filename}``, newest snapshot first."""
    folder = hf_hub_dir() / f"models--{repo.replace('/', '--')}" / "snapshots"
    candidates = sorted(folder.glob(f"*/{filename}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return candidates[0] if candidates else None


def quant_of(filename: str) -> str | None:
    match = _QUANT.search(filename)
    return match.group(1).upper() if match else None


@dataclass(frozen=True, slots=True)
class DiscoveredModel:
    alias: str  # {owner}/{repo}:{QUANT}
    repo: str
    filename: str
    path: Path


def discover_hf_models() -> list[DiscoveredModel]:
    """Automatic aliases for the GGUF files in the HuggingFace cache, one per repo and quantisation."""
    found: dict[str, DiscoveredModel] = {}
    for repo_dir in sorted(hf_hub_dir().glob("models--*--*")):
        repo = repo_dir.name.removeprefix("models--").replace("--", "/", 1)
        for path in sorted(repo_dir.glob("snapshots/*/*.gguf")):
            quant = quant_of(path.name)
            if quant is not None:
                alias = f"{repo}:{quant}"
                found.setdefault(alias, DiscoveredModel(alias=alias, repo=repo, filename=path.name, path=path))
    return list(found.values())


# A listing for a form's file picker, not an inventory: a models folder with more files than this is cut short.
MAX_LISTED_FILES = 1000


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A ``.gguf`` file a local alias could name: ``filename`` is relative to the models folder, or to the
    snapshot of ``repo`` in the HuggingFace cache."""

    path: Path
    filename: str
    repo: str | None
    size_bytes: int


def list_gguf_files(models_dir: Path) -> list[FoundFile]:
    """The ``.gguf`` files under ``models_dir`` and in the HuggingFace cache (newest snapshot of each repo file),
    each group sorted by name. Blocking: it walks directories (call it from a thread)."""
    found = [
        FoundFile(path=path, filename=path.relative_to(models_dir).as_posix(), repo=None, size_bytes=size)
        for path, size in _gguf_files_under(models_dir)
    ]
    return (found + _hf_cache_files())[:MAX_LISTED_FILES]


def _gguf_files_under(folder: Path) -> list[tuple[Path, int]]:
    files = []
    for path in sorted(folder.rglob("*.gguf")) if folder.is_dir() else ():
        try:
            if path.is_file():
                files.append((path, path.stat().st_size))
        except OSError:  # a dangling link or a file removed meanwhile: not one to offer
            continue
        if len(files) >= MAX_LISTED_FILES:
            break
    return files


def _hf_cache_files() -> list[FoundFile]:
    newest: dict[tuple[str, str], tuple[float, FoundFile]] = {}
    for repo_dir in sorted(hf_hub_dir().glob("models--*--*")):
        repo = repo_dir.name.removeprefix("models--").replace("--", "/", 1)
        for snapshot in sorted((repo_dir / "snapshots").glob("*")):
            for path, size in _gguf_files_under(snapshot):
                filename = path.relative_to(snapshot).as_posix()
                mtime = snapshot.stat().st_mtime
                if (repo, filename) not in newest or newest[(repo, filename)][0] < mtime:
                    entry = FoundFile(path=path, filename=filename, repo=repo, size_bytes=size)
                    newest[(repo, filename)] = (mtime, entry)
    return [entry for _, entry in sorted(newest.values(), key=lambda e: (e[1].repo or "", e[1].filename))]
