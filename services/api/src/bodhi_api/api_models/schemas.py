"""What clients send and get back for API models: pydantic models that carry the rules the docs promise.

Their validation errors reach clients in the OpenAI error shape (``error_handlers.handle_validation_error``).
What depends on the deployment's settings (which addresses providers may have) is checked in the route with
``check_upstream_host``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator

from bodhi_shared.clean_text import CleanLine, HeaderValue
from bodhi_shared.errors import InvalidRequest
from bodhi_shared.upstream_addresses import PRIVATE_HINT, refused_host

# The supported API formats are data: another format is another entry (and a worker adapter).
ApiFormat = Literal["openai"]
API_FORMATS: tuple[str, ...] = ("openai",)
MAX_MODELS = 50
MAX_PREFIX = 32
MAX_URL = 2048
MAX_API_KEY = 4096
# A base URL is what `/chat/completions` is appended to: one that already names an endpoint doubles it.
_ENDPOINT_SUFFIXES = ("/chat/completions", "/completions", "/embeddings", "/models")
_PREFIX = re.compile(r"[A-Za-z0-9\-_./:]+")


def normalize_base_url(raw: str) -> str:
    """The base URL as stored and sealed for: http(s), a host, no credentials, query or fragment, no endpoint
    path, no trailing slash. Raises ``ValueError`` (pydantic turns it into a 400) saying what to send instead."""
    text = raw.strip()
    example = "such as https://api.openai.com/v1"
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        raise ValueError(f"must be an absolute http(s) URL {example}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"must be an absolute http(s) URL {example}")
    if url.userinfo:
        raise ValueError("must not hold a user name or password: give the key as `api_key`")
    if "?" in text or "#" in text:
        raise ValueError(f"must not have a query string or fragment; use {_without_query(url)}")
    path = url.path.rstrip("/")
    for suffix in _ENDPOINT_SUFFIXES:
        if path.lower().endswith(suffix):
            fixed = url.copy_with(path=path[: -len(suffix)] or "/")
            raise ValueError(
                f"must be the URL that `/chat/completions` is appended to, not an endpoint; use "
                f"{str(fixed).rstrip('/')}"
            )
    return str(url.copy_with(path=path or "/")).rstrip("/")


def _without_query(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None)).rstrip("/")


def check_upstream_host(base_url: str, *, allow_private: bool, param: str = "base_url") -> None:
    """Refuse a base URL whose host is a metadata, link-local or (unless allowed) private or loopback address.

    Host names are checked again against what they resolve to when a worker connects.
    """
    reason = refused_host(httpx.URL(base_url).host, allow_private=allow_private)
    if reason is not None:
        hint = "" if "link-local" in reason or "metadata" in reason else f" {PRIVATE_HINT}"
        raise InvalidRequest(f"`{param}` is refused: {reason}.{hint}", param=param, code="upstream_address_refused")


def _checked_prefix(prefix: str) -> str:
    if len(prefix) > MAX_PREFIX or not _PREFIX.fullmatch(prefix):
        raise ValueError(f"must be 1 to {MAX_PREFIX} letters, digits or `- _ . / :` without spaces, like `openai/`")
    return prefix


def _checked_models(models: list[str]) -> list[str]:
    duplicates = sorted({m for m in models if models.count(m) > 1}, key=str.lower)
    if duplicates:
        raise ValueError(f"lists {', '.join(duplicates)} more than once")
    return models


# Every text field is one line without control characters (``clean_text``): each is stored, listed, and sent to
# providers; the key goes into an Authorization header, so it is printable ASCII.
BaseUrl = Annotated[CleanLine, StringConstraints(max_length=MAX_URL), AfterValidator(normalize_base_url)]
ModelId = Annotated[CleanLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Prefix = Annotated[str, AfterValidator(_checked_prefix)]
ModelList = Annotated[list[ModelId], Field(min_length=1, max_length=MAX_MODELS), AfterValidator(_checked_models)]
ApiKey = Annotated[HeaderValue, StringConstraints(strip_whitespace=True, max_length=MAX_API_KEY)]
Name = Annotated[CleanLine, StringConstraints(strip_whitespace=True, max_length=200)]


def _none_if_empty(value: Any) -> Any:
    """An empty prefix (a form's blank field) means no prefix."""
    return None if value == "" else value


class ApiModelFields(BaseModel):
    """What an API model is made of, the key aside."""

    name: Name | None = Field(default=None, description="Shown in lists; the base URL's host when empty.")
    api_format: ApiFormat = "openai"
    base_url: BaseUrl = Field(description="What `/chat/completions` is appended to, e.g. https://api.openai.com/v1")
    prefix: Prefix | None = Field(
        default=None, description="Put before each model id (`openai/` -> `openai/gpt-4o`); empty for none."
    )
    models: ModelList = Field(description=f"The provider's model ids to serve, 1 to {MAX_MODELS}.")

    empty_prefix_is_none = field_validator("prefix", mode="before")(_none_if_empty)

    def display_name(self) -> str:
        return self.name or httpx.URL(self.base_url).host

    def served_ids(self) -> list[str]:
        """The model ids clients use: the prefix (if any) followed by each selected model."""
        return [f"{self.prefix or ''}{model}" for model in self.models]


class ApiModelCreate(ApiModelFields):
    """``POST /bodhi/v1/models/api``."""

    api_key: Annotated[ApiKey, Field(min_length=1)] = Field(
        description="The provider's key: sealed for the remote workers, never shown again."
    )


class ApiModelUpdate(ApiModelFields):
    """``PUT /bodhi/v1/models/api/{id}``: a full replace, except that an absent, null or empty ``api_key`` keeps
    the stored key (what an edit form with an untouched password field sends). A new ``base_url`` needs a key."""

    api_key: ApiKey | None = None

    def new_key(self) -> str | None:
        return self.api_key or None


class ApiModelPatch(BaseModel):
    """``PATCH /bodhi/v1/models/api/{id}``: only the fields to change; the rest stay as stored."""

    name: Name | None = None
    api_format: ApiFormat | None = None
    base_url: BaseUrl | None = None
    prefix: Prefix | None = None
    models: ModelList | None = None
    api_key: ApiKey | None = None

    empty_prefix_is_none = field_validator("prefix", mode="before")(_none_if_empty)


class ProviderTarget(BaseModel):
    """Fetch-models and test-connection bodies: a form's ``base_url`` + ``api_key``, or a stored ``id``.

    With ``id``, a given ``api_key`` is the one used, and a ``base_url`` other than the stored one needs one.
    """

    id: CleanLine | None = Field(default=None, max_length=64)
    base_url: BaseUrl | None = None
    api_key: ApiKey | None = None
    model: ModelId | None = None


class ApiModelPublic(BaseModel):
    """An API model as every response shows it: never the key, only whether there is one and its hint."""

    id: str
    name: str
    api_format: str
    base_url: str
    prefix: str | None
    models: list[str]
    has_api_key: bool
    api_key_hint: str
    created_by: str | None
    editable: bool = Field(description="Whether the caller may edit, delete, or test with the stored key.")
    created_at: datetime
    updated_at: datetime


class ApiModelList(BaseModel):
    data: list[ApiModelPublic]


class ApiFormatList(BaseModel):
    data: list[str]


class FetchedModels(BaseModel):
    models: list[str]


class ConnectionTest(BaseModel):
    success: bool
    response: str | None = None
    error: str | None = None
    error_code: str | None = None
