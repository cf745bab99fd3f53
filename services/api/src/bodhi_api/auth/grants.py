"""Model grants: which served model ids a user, and each of their tokens, may use.

A grant is a list of model ids or patterns in which ``*`` stands for any run of characters (``openai/*``); no
other character is special and matching is case-sensitive, as model ids are. ``None`` (``allowed_models`` NULL
in ``users`` and ``api_tokens``) allows every model. A request must be allowed by both the user's and the
token's grants (``ModelGrant``); a browser session has the user's alone.

Both lists come with the principal that authentication loads anyway (the token's row joined with its owner's,
cached by ``token_cache.TokenCache``; a session's user row), so checking costs no query.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StringConstraints

from bodhi_api.http_errors import PermissionDenied
from bodhi_shared.clean_text import CleanLine

MAX_PATTERNS = 256
MAX_PATTERN_LENGTH = 512  # as long as a requested ``model`` may be (``openai_wire``)
MODEL_NOT_ALLOWED = "model_not_allowed"

ModelPattern = Annotated[
    CleanLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PATTERN_LENGTH)
]
"""A model id, or a pattern of one with ``*`` for any characters."""
AllowedModels = Annotated[list[ModelPattern], Field(max_length=MAX_PATTERNS)]
"""A grant as a body carries it: the ids and patterns allowed (``null`` where a body allows it: every model)."""


def normalise(patterns: Iterable[str] | None) -> tuple[str, ...] | None:
    """Stripped, without duplicates or blanks, in the order given; None stays None (every model)."""
    if patterns is None:
        return None
    return tuple(dict.fromkeys(p.strip() for p in patterns if p.strip()))


@functools.lru_cache(maxsize=4096)
def _matcher(patterns: tuple[str, ...]) -> tuple[frozenset[str], re.Pattern[str] | None]:
    """The exact ids, and one regex for the patterns with a ``*`` (None if there are none)."""
    exact = frozenset(p for p in patterns if "*" not in p)
    wild = [".*".join(re.escape(part) for part in p.split("*")) for p in patterns if "*" in p]
    return exact, re.compile(f"(?:{'|'.join(wild)})", re.DOTALL) if wild else None


def allows(patterns: Sequence[str] | None, model: str) -> bool:
    """Whether the grant ``patterns`` allows ``model`` (None: every model)."""
    if patterns is None:
        return True
    exact, wild = _matcher(tuple(patterns))
    return model in exact or (wild is not None and wild.fullmatch(model) is not None)


def covers(limit: Sequence[str] | None, patterns: Sequence[str] | None) -> bool:
    """Whether every model ``patterns`` allows is one ``limit`` allows too (None: every model).

    Conservative and exact enough: each pattern's text, its ``*`` read as a plain character, must match ``limit``;
    then ``limit``'s wildcards take in the pattern's, and its plain characters match the pattern's plain ones."""
    if limit is None:
        return True
    return patterns is not None and all(allows(limit, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class ModelGrant:
    """What a caller may use: the user's grant and, for a token, the token's; None in either allows everything."""

    user: tuple[str, ...] | None = None
    token: tuple[str, ...] | None = None

    @property
    def unlimited(self) -> bool:
        return self.user is None and self.token is None

    def allows(self, model: str) -> bool:
        return allows(self.user, model) and allows(self.token, model)

    def check(self, model: str) -> None:
        """Raise 403 ``model_not_allowed`` naming ``model`` unless the grant allows it."""
        if self.allows(model):
            return
        whose = "your account" if not allows(self.user, model) else "this API token"
        raise PermissionDenied(
            f"The model `{model}` is not allowed for {whose}. GET /v1/models lists the models you may use; ask a "
            "manager to change your account's models, or change the token's (PATCH /bodhi/v1/tokens/{id}).",
            param="model",
            code=MODEL_NOT_ALLOWED,
        )


ALL_MODELS = ModelGrant()
