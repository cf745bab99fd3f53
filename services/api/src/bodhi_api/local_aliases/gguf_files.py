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
    if not path.is_file():
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
