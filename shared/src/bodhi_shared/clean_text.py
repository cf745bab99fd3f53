"""Text a client sends that Bodhi stores, looks up or sends on: one rule, applied to every such field.

Postgres refuses NUL in ``text`` and ``jsonb``, and a lone surrogate (``"\\ud800"`` in JSON) cannot be encoded as
UTF-8 at all: either reaching a query, a hash or a job would be a 500. A value that may end up in an HTTP header
(an API key) or on one line of a list (names, ids) must also hold no control character, or it could split the
header or the line. Each check raises ``ValueError``, which pydantic turns into a 400 naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# The characters each rule refuses, as regex class text that Python, ECMAScript and Rust (the JSON Schema
# validators) all read alike. Surrogates are checked too but not documented: a JSON document cannot hold one.
_NUL = r"\u0000"
_CONTROLS = r"\u0000-\u001f\u007f-\u009f\u2028\u2029"  # C0, DEL, C1, the line and paragraph separators
_SURROGATES = r"\ud800-\udfff"
_UNSTORABLE = re.compile(f"[{_NUL}{_SURROGATES}]")
_NOT_ONE_LINE = re.compile(f"[{_CONTROLS}{_SURROGATES}]")
_NOT_HEADER_SAFE = re.compile(r"[^\u0020-\u007e]")  # an HTTP header value as it is: printable ASCII and spaces


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return "must not contain NUL characters" if found.group() == "\x00" else "must not contain lone surrogates"


def check_text(value: str) -> str:
    """``value`` if Postgres can store it (no NUL, no lone surrogate)."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_line(value: str) -> str:
    """``value`` if it is storable and one line: no control characters, no line separators."""
    check_text(value)
    if _NOT_ONE_LINE.search(value):
        raise ValueError("must be one line without control characters")
    return value


def check_header_value(value: str) -> str:
    """``value`` if it can be sent as an HTTP header value as it is: printable ASCII only."""
    check_text(value)
    if _NOT_HEADER_SAFE.search(value):
        raise ValueError("must hold printable ASCII characters only")
    return value


@dataclass(frozen=True, slots=True)
class DocumentedPattern:
    """States in the JSON schema (hence ``/openapi.json``) the rule a validator next to it enforces; it validates
    nothing itself, so the validator's message, not a regex, is what a client reads."""

    pattern: str

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


TEXT_PATTERN = f"^[^{_NUL}]*$"
LINE_PATTERN = f"^[^{_CONTROLS}]*$"
HEADER_VALUE_PATTERN = r"^[\u0020-\u007e]*$"

CleanText = Annotated[str, AfterValidator(check_text), DocumentedPattern(TEXT_PATTERN)]
"""Free text that is stored (a password, a system prompt)."""
CleanLine = Annotated[str, AfterValidator(check_line), DocumentedPattern(LINE_PATTERN)]
"""A one-line value that is stored and shown (a name, a model id, a file path)."""
HeaderValue = Annotated[str, AfterValidator(check_header_value), DocumentedPattern(HEADER_VALUE_PATTERN)]
"""A value sent on in an HTTP header (a provider's API key)."""
