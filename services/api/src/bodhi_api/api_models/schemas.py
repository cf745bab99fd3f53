"""What clients send and get back for API models, and the validation rules the docs promise."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from pydantic import BaseModel

from bodhi_shared.errors import InvalidRequest

# The supported API formats are data: another format is another entry (and a worker adapter).
API_FORMATS: tuple[str, ...] = ("openai",)
MAX_MODELS = 50
MAX_PREFIX = 32
_PREFIX = re.compile(r"[A-Za-z0-9\-_./:]+")


class ApiModelCreate(BaseModel):
    """``POST /bodhi/v1/models/api``. Fields are optional here so that validate() can name what is missing."""

    name: str | None = None
    api_format: str = "openai"
    base_url: str | None = None
    api_key: str | None = None
    prefix: str | None = None
    models: list[str] | None = None


class ApiModelUpdate(ApiModelCreate):
    """``PUT /bodhi/v1/models/api/{id}``: like create, but an absent or null ``api_key`` keeps the stored key."""


class ProviderTarget(BaseModel):
    """Fetch-models and test-connection bodies: a form's ``base_url`` + ``api_key``, or a stored ``id``."""

    id: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class ApiModelFields:
    name: str
    api_format: str
    base_url: str
    prefix: str | None
    models: list[str]

    def served_ids(self) -> list[str]:
        """The model ids clients use: the prefix (if any) followed by each selected model."""
        return [f"{self.prefix or ''}{model}" for model in self.models]


def validate_base_url(raw: str | None) -> str:
    if not raw or not raw.strip():
        raise InvalidRequest("`base_url` is required, e.g. https://api.openai.com/v1.", param="base_url")
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise InvalidRequest(
            f"`base_url` must be an absolute http(s) URL such as https://api.openai.com/v1, not `{raw}`.",
            param="base_url",
        )
    return str(url).rstrip("/")


def validate_prefix(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_PREFIX or not _PREFIX.fullmatch(raw):
        raise InvalidRequest(
            f"`prefix` must be 1 to {MAX_PREFIX} letters, digits or `- _ . / :` without spaces, like `openai/`.",
            param="prefix",
        )
    return raw


def validate_models(raw: list[str] | None) -> list[str]:
    if not raw:
        raise InvalidRequest("`models` must list at least one model id; fetch them with fetch-models.", param="models")
    if len(raw) > MAX_MODELS:
        raise InvalidRequest(f"`models` lists {len(raw)} models; at most {MAX_MODELS} are allowed.", param="models")
    if any(not isinstance(m, str) or not m.strip() for m in raw):
        raise InvalidRequest("`models` must hold non-empty model ids.", param="models")
    duplicates = sorted({m for m in raw if raw.count(m) > 1})
    if duplicates:
        raise InvalidRequest(f"`models` lists {', '.join(duplicates)} more than once.", param="models")
    return list(raw)


def validate_api_key(raw: str | None) -> str:
    if raw is None or not raw.strip():
        raise InvalidRequest("`api_key` is required: paste the key from your provider's dashboard.", param="api_key")
    return raw.strip()


def validate_fields(body: ApiModelCreate) -> ApiModelFields:
    if body.api_format not in API_FORMATS:
        raise InvalidRequest(
            f"`api_format` `{body.api_format}` is not supported; use one of: {', '.join(API_FORMATS)}.",
            param="api_format",
        )
    base_url = validate_base_url(body.base_url)
    name = (body.name or "").strip() or httpx.URL(base_url).host
    return ApiModelFields(
        name=name,
        api_format=body.api_format,
        base_url=base_url,
        prefix=validate_prefix(body.prefix),
        models=validate_models(body.models),
    )


def public_api_model(row: asyncpg.Record) -> dict[str, Any]:
    """An API model as every response shows it: never the key, only whether there is one and its hint."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "api_format": row["api_format"],
        "base_url": row["base_url"],
        "prefix": row["prefix"],
        "models": list(row["models"]),
        "has_api_key": bool(row["sealed_key"]),
        "api_key_hint": row["key_hint"],
        "created_by": str(row["created_by"]) if row["created_by"] else None,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
