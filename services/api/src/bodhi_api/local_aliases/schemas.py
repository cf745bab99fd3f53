"""Local alias bodies and their validation: a name, a GGUF file that exists, known load and request params."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from bodhi_api.local_aliases.gguf_files import NotGguf, check_gguf, find_in_hf_cache
from bodhi_shared.errors import InvalidRequest

_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_./:]{0,127}")
# llama_cpp.Llama keyword arguments an alias may set, with their types.
CONTEXT_PARAMS: dict[str, tuple[type, ...]] = {
    "n_ctx": (int,),
    "n_gpu_layers": (int,),
    "n_batch": (int,),
    "n_threads": (int,),
    "main_gpu": (int,),
    "rope_freq_base": (int, float),
    "rope_freq_scale": (int, float),
    "flash_attn": (bool,),
    "use_mmap": (bool,),
    "use_mlock": (bool,),
    "chat_format": (str,),
}
# Request defaults, applied only when a request does not set them.
REQUEST_PARAMS: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "max_tokens": (int,),
    "stop": (str, list),
    "seed": (int,),
    "system_prompt": (str,),
}


class LocalAliasBody(BaseModel):
    alias: str | None = None
    repo: str | None = None
    filename: str | None = None
    path: str | None = None
    context_params: dict[str, Any] = Field(default_factory=dict)
    request_params: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AliasFields:
    alias: str
    path: Path
    repo: str | None
    filename: str | None
    context_params: dict[str, Any]
    request_params: dict[str, Any]


def validate_alias_name(raw: str | None) -> str:
    if not raw or not _ALIAS.fullmatch(raw):
        raise InvalidRequest(
            "`alias` must be 1 to 128 letters, digits or `- _ . / :`, starting with a letter or digit.", param="alias"
        )
    return raw


def resolve_file(body: LocalAliasBody, *, models_dir: Path) -> Path:
    """The GGUF file an alias names: ``path`` (absolute, or under BODHI_HOME/models), ``repo`` + ``filename`` in
    the HuggingFace cache, or ``filename`` under BODHI_HOME/models."""
    if body.path:
        path, param = Path(body.path).expanduser(), "path"
        path = path if path.is_absolute() else models_dir / path
    elif body.repo and body.filename:
        found = find_in_hf_cache(body.repo, body.filename)
        path, param = found or Path(f"<HF cache>/{body.repo}/{body.filename}"), "filename"
        if found is None:
            raise InvalidRequest(f"`{body.filename}` of `{body.repo}` is not in the HuggingFace cache.", param=param)
    elif body.filename:
        path, param = models_dir / body.filename, "filename"
    else:
        raise InvalidRequest("Give `path`, or `repo` and `filename`, of a GGUF file.", param="path")
    try:
        check_gguf(path)
    except NotGguf as exc:
        raise InvalidRequest(f"`{param}`: {exc}.", param=param) from None
    return path.resolve()


def _checked(params: dict[str, Any], allowed: dict[str, tuple[type, ...]], field: str) -> dict[str, Any]:
    for key, value in params.items():
        if key not in allowed:
            raise InvalidRequest(f"`{field}.{key}` is not supported; use {', '.join(sorted(allowed))}.", param=field)
        types = allowed[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise InvalidRequest(f"`{field}.{key}` must be a {names}.", param=field)
    return dict(params)


def validate_alias(body: LocalAliasBody, *, alias: str | None = None, models_dir: Path) -> AliasFields:
    return AliasFields(
        alias=validate_alias_name(alias or body.alias),
        path=resolve_file(body, models_dir=models_dir),
        repo=body.repo,
        filename=body.filename,
        context_params=_checked(body.context_params, CONTEXT_PARAMS, "context_params"),
        request_params=_checked(body.request_params, REQUEST_PARAMS, "request_params"),
    )


def public_alias(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "alias": row["alias"],
        "path": row["path"],
        "repo": row["repo"],
        "filename": row["filename"],
        "context_params": row["context_params"],
        "request_params": row["request_params"],
        "source": row["source"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
