"""What clients send and get back for local aliases: pydantic models that carry the rules the docs promise.

Their validation errors reach clients in the OpenAI error shape (``error_handlers.handle_validation_error``).
Whether the named file exists and is GGUF touches the filesystem, so ``resolve_file`` checks it in the route.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bodhi_api.local_aliases.gguf_files import NotGguf, check_gguf, find_in_hf_cache
from bodhi_shared.clean_text import CleanLine, CleanText, check_text
from bodhi_shared.errors import InvalidRequest

ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9\-_./:]{0,127}$"
MAX_PATH = 4096
MAX_NAME = 512


def _explained(message: str) -> WrapValidator:
    """Replace pydantic's own errors for a field (a regex, a union's every branch) with one plain sentence."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("invalid_value", message) from None

    return WrapValidator(validate)


AliasName = Annotated[
    str,
    Field(
        pattern=ALIAS_PATTERN,
        description="1 to 128 letters, digits or `- _ . / :`, starting with a letter or digit.",
        examples=["llama-3.2-1b"],
    ),
    _explained("must be 1 to 128 letters, digits or `- _ . / :`, starting with a letter or digit"),
]


# What a file system takes (Linux: NAME_MAX, PATH_MAX): a longer name is not "no such file" but an error.
MAX_PATH_PART_BYTES = 255


def _checked_path(value: str) -> str:
    encoded = os.fsencode(value)
    if len(encoded) >= MAX_PATH or any(len(part) > MAX_PATH_PART_BYTES for part in encoded.split(b"/")):
        raise ValueError(f"is too long for a file system: at most {MAX_PATH - 1} bytes, {MAX_PATH_PART_BYTES} per name")
    return value


FilePath = Annotated[CleanLine, AfterValidator(_checked_path)]


def _clean_stop(value: str | list[str]) -> str | list[str]:
    for text in [value] if isinstance(value, str) else value:
        check_text(text)
    return value


# Stop strings may hold newlines (they often are one), but nothing Postgres cannot store (``clean_text``).
Stop = Annotated[str | list[str], _explained("must be a string or a list of strings"), AfterValidator(_clean_stop)]


class _Params(BaseModel):
    """A set of optional keyword parameters: only those listed, each of its own type (``true`` is no number).

    ``null`` means the same as leaving a parameter out."""

    # No NaN or Infinity: stored as JSONB, which has neither (and a provider's JSON neither).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_only(cls, data: Any) -> Any:
        # extra="forbid" alone says "Extra inputs are not permitted"; naming the supported ones helps more.
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in cls.model_fields)
            if unknown:
                raise PydanticCustomError(
                    "unsupported_param",
                    "`{name}` is not supported; use {supported}",
                    {"name": unknown[0], "supported": ", ".join(sorted(cls.model_fields))},
                )
        return data

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}

    def given(self) -> dict[str, Any]:
        """The parameters set, as stored and handed on."""
        return self.model_dump()


class ContextParams(_Params):
    """``llama_cpp.Llama`` keyword arguments the alias loads its model with."""

    n_ctx: int | None = Field(default=None, ge=0, description="Context length in tokens; 0: the model's own.")
    n_gpu_layers: int | None = Field(default=None, ge=-1, description="Layers offloaded to the GPU; -1: all.")
    n_batch: int | None = Field(default=None, ge=1)
    n_threads: int | None = Field(default=None, ge=1)
    n_parallel: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Requests served at once (continuous batching); n_ctx is split between them. Default: 4 on the "
        "CPU, 8 on a GPU, fewer where a request would get under 512 tokens; 1: one request at a time.",
    )
    main_gpu: int | None = Field(default=None, ge=0)
    rope_freq_base: float | None = Field(default=None, ge=0)
    rope_freq_scale: float | None = Field(default=None, ge=0)
    flash_attn: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    chat_format: CleanLine | None = Field(default=None, max_length=MAX_NAME)


class RequestParams(_Params):
    """Request defaults, applied only when a request does not set them; ``system_prompt`` only when the request
    has no system message."""

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: Stop | None = None
    seed: int | None = None
    system_prompt: CleanText | None = None


class LocalAliasFile(BaseModel):
    """The GGUF file an alias names, and how it is loaded and asked: the body of a PUT."""

    alias: AliasName | None = Field(default=None, description="If given, the URL's alias: aliases are not renamed.")
    path: FilePath | None = Field(
        default=None, max_length=MAX_PATH, description="A GGUF file: absolute, or under BODHI_HOME/models."
    )
    repo: CleanLine | None = Field(default=None, max_length=MAX_NAME, description="A HuggingFace repo (`owner/name`).")
    filename: FilePath | None = Field(
        default=None,
        max_length=MAX_NAME,
        description="With `repo`: a file of that repo in the HuggingFace cache; alone: a file under BODHI_HOME/models.",
    )
    context_params: ContextParams = Field(default_factory=ContextParams)
    request_params: RequestParams = Field(default_factory=RequestParams)


class LocalAliasCreate(LocalAliasFile):
    """The body of a POST: a new alias and its file."""

    alias: AliasName


class LocalAliasPublic(BaseModel):
    """A local alias as every response shows it."""

    alias: str
    path: str = Field(description="The resolved GGUF file.")
    repo: str | None
    filename: str | None
    context_params: dict[str, Any]
    request_params: dict[str, Any]
    source: Literal["user", "auto"] = Field(description="`auto`: discovered in the HuggingFace cache.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> LocalAliasPublic:
        return cls(**{name: row[name] for name in cls.model_fields})


class LocalAliasList(BaseModel):
    data: list[LocalAliasPublic]


@dataclass(frozen=True, slots=True)
class AliasFields:
    """An alias as stored: its body checked, its file found."""

    alias: str
    path: Path
    repo: str | None
    filename: str | None
    context_params: dict[str, Any]
    request_params: dict[str, Any]


def resolve_file(body: LocalAliasFile, *, models_dir: Path) -> Path:
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


def alias_fields(body: LocalAliasFile, *, alias: str, models_dir: Path) -> AliasFields:
    """What to store for ``alias``: the body, with its file found and checked (400 if it is not GGUF)."""
    return AliasFields(
        alias=alias,
        path=resolve_file(body, models_dir=models_dir),
        repo=body.repo,
        filename=body.filename,
        context_params=body.context_params.given(),
        request_params=body.request_params.given(),
    )


class GgufFile(BaseModel):
    """A GGUF file the server found, for a form's file picker: send ``path``, or ``repo`` and ``filename``."""

    path: str = Field(description="The file's absolute path on the server.")
    filename: str = Field(description="Relative to BODHI_HOME/models, or to the repo's snapshot in the HF cache.")
    repo: str | None = Field(description="The HuggingFace repo (`owner/name`) of a file in the HF cache; else null.")
    source: Literal["models_dir", "hf_cache"]
    size_bytes: int


class GgufFileList(BaseModel):
    data: list[GgufFile]
    models_dir: str = Field(description="BODHI_HOME/models: where a relative `path` is looked for.")
