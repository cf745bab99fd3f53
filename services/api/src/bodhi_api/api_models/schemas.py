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
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from bodhi_shared.clean_text import HEADER_VALUE_PATTERN, CleanLine, HeaderValue, check_header_value
from bodhi_shared.errors import InvalidRequest
from bodhi_shared.upstream_addresses import PRIVATE_HINT, refused_host

# The supported API formats are data: another format is another entry (and a worker adapter,
# bodhi_remote_worker.provider_formats). `openai`: chat completions; `openai-responses`: the Responses API at
# {base_url}/responses; `anthropic`: Anthropic Messages at {base_url}/messages, the key in `x-api-key`.
ApiFormat = Literal["openai", "openai-responses", "anthropic"]
API_FORMATS: tuple[str, ...] = ("openai", "openai-responses", "anthropic")
MAX_MODELS = 50
MAX_PREFIX = 32
MAX_URL = 2048
MAX_API_KEY = 4096
# A base URL is what `/chat/completions` is appended to: one that already names an endpoint doubles it.
_ENDPOINT_SUFFIXES = ("/chat/completions", "/completions", "/embeddings", "/models")
_PREFIX = re.compile(r"[A-Za-z0-9\-_./:]+")
MAX_EXTRA_HEADERS = 20
MAX_HEADER_NAME = 100
MAX_HEADER_VALUE = 4096
# An RFC 7230 token: what a header's name may be.
HEADER_NAME_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
_HEADER_NAME = re.compile(HEADER_NAME_PATTERN.removeprefix("^").removesuffix("$"))
# Extra headers that would carry a secret every user can read (keys go in `api_key`, sealed), or that Bodhi's
# HTTP client and the API format set themselves.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie"})
REFUSED_HEADERS = SECRET_HEADERS | frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "content-type",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "anthropic-version",
    }
)


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


def _checked_extra_headers(value: Any) -> Any:
    """Refuse (400 naming `extra_headers`) a header that could not be sent as it is, one of ``REFUSED_HEADERS``,
    a name given twice (in any case), or more than ``MAX_EXTRA_HEADERS``; anything but an object is left to the
    type check."""
    if not isinstance(value, dict):
        return value
    if len(value) > MAX_EXTRA_HEADERS:
        raise ValueError(f"at most {MAX_EXTRA_HEADERS} headers")
    seen: set[str] = set()
    for name, header_value in value.items():
        if len(name) > MAX_HEADER_NAME or not _HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"`{name[:MAX_HEADER_NAME]}` is not a header name: 1 to {MAX_HEADER_NAME} letters, digits or "
                "!#$%&'*+-.^_`|~"
            )
        lowered = name.lower()
        if lowered in SECRET_HEADERS:
            raise ValueError(
                f"`{name}` is refused: extra headers are shown to every user, so a key goes in `api_key` (sealed, "
                "never shown) instead"
            )
        if lowered in REFUSED_HEADERS:
            raise ValueError(f"`{name}` is refused: Bodhi sets it itself")
        if lowered in seen:
            raise ValueError(f"`{name}` is given more than once")
        seen.add(lowered)
        if not isinstance(header_value, str) or len(header_value) > MAX_HEADER_VALUE:
            raise ValueError(f"the value of `{name}` must be a string of at most {MAX_HEADER_VALUE} characters")
        try:
            check_header_value(header_value)
        except ValueError as exc:
            raise ValueError(f"the value of `{name}` {exc}") from None
    return value


# Checked whole (one error, naming `extra_headers`); the schema states the same rules.
ExtraHeaders = Annotated[
    dict[str, str],
    BeforeValidator(_checked_extra_headers),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_EXTRA_HEADERS,
            "patternProperties": {
                HEADER_NAME_PATTERN: {"type": "string", "maxLength": MAX_HEADER_VALUE, "pattern": HEADER_VALUE_PATTERN}
            },
            "additionalProperties": False,
        }
    ),
]
EXTRA_HEADERS_DESCRIPTION = (
    f"Headers sent on every call to the provider, name -> value (at most {MAX_EXTRA_HEADERS}). Shown to every "
    "user, so never a secret: a key goes in `api_key`. Authorization, X-Api-Key, Proxy-Authorization, Cookie, Host "
    "and the headers Bodhi sets itself (Content-Type, Content-Length, ...) are refused."
)


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
    extra_headers: ExtraHeaders = Field(default_factory=dict, description=EXTRA_HEADERS_DESCRIPTION)

    empty_prefix_is_none = field_validator("prefix", mode="before")(_none_if_empty)

    def display_name(self) -> str:
        return self.name or httpx.URL(self.base_url).host

    def served_ids(self) -> list[str]:
        """The model ids clients use: the prefix (if any) followed by each selected model."""
        return [f"{self.prefix or ''}{model}" for model in self.models]


class ApiModelCreate(ApiModelFields):
    """``POST /bodhi/v1/models/api``."""

    api_key: ApiKey | None = Field(
        default=None,
        description="The provider's key: sealed for the remote workers, never shown again. Absent, null or empty "
        "for a provider that needs none (a local server): no key header is sent at all.",
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
    extra_headers: ExtraHeaders | None = Field(default=None, description=EXTRA_HEADERS_DESCRIPTION)
    api_key: ApiKey | None = None

    empty_prefix_is_none = field_validator("prefix", mode="before")(_none_if_empty)


class ProviderTarget(BaseModel):
    """Fetch-models and test-connection bodies: a form's ``base_url`` + ``api_key``, or a stored ``id``.

    With ``id``, a given ``api_key`` is the one used, and a ``base_url`` other than the stored one needs one
    (unless the saved model is keyless). Without ``id``, no ``api_key`` means a keyless provider. ``api_format`` and
    ``extra_headers``, when given, are used instead of the stored ones (a form being edited).
    """

    id: CleanLine | None = Field(default=None, max_length=64)
    base_url: BaseUrl | None = None
    api_key: ApiKey | None = None
    model: ModelId | None = None
    api_format: ApiFormat | None = None
    extra_headers: ExtraHeaders | None = Field(default=None, description=EXTRA_HEADERS_DESCRIPTION)


class ApiModelPublic(BaseModel):
    """An API model as every response shows it: never the key, only whether there is one and its hint."""

    id: str
    name: str
    api_format: str
    base_url: str
    prefix: str | None
    models: list[str]
    extra_headers: dict[str, str] = Field(description="Sent on every call to the provider; never secrets.")
    has_api_key: bool = Field(description="False for a keyless API model (a provider that needs no key).")
    api_key_hint: str = Field(description="The key's masked hint, like `sk-...abcd`; empty when keyless.")
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
