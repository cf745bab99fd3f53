"""One drawn error tree: every error a client can see is a BodhiError, and every BodhiError class appears in
the tree drawn at the top of `bodhi_shared/errors.py` (or its API-only branch in `bodhi_api/http_errors.py`)."""

from __future__ import annotations

import re

import bodhi_api.http_errors
import bodhi_shared.errors
from bodhi_shared.errors import BodhiError
from tests.test_architecture_doc import bodhi_modules


def all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found |= {sub, *all_subclasses(sub)}
    return found


_NODE = re.compile(r"^(?P<indent>[ │├└─]*?)(?P<name>[A-Z][A-Za-z]+)(?:\s{2,}|$)")


def drawn_parents() -> dict[str, str | None]:
    """Each class drawn in the two trees, with the class it is drawn under (None for the root)."""
    parents: dict[str, str | None] = {}
    for doc in (bodhi_shared.errors.__doc__ or "", bodhi_api.http_errors.__doc__ or ""):
        stack: list[tuple[int, str]] = []
        for line in doc.splitlines():
            match = _NODE.match(line)
            if match is None or ("──" not in line and match.group("name") != "BodhiError"):
                continue  # prose, or a continuation line of a node's description
            depth = len(match.group("indent"))
            while stack and stack[-1][0] >= depth:
                stack.pop()
            name = match.group("name")
            if name != "BodhiError" or "BodhiError" not in parents:
                parents[name] = stack[-1][1] if stack else None
            stack.append((depth, name))
    return parents


def test_every_error_class_is_in_the_drawn_tree_under_its_parent() -> None:
    bodhi_modules()  # import every module, so every error class is defined
    classes = {cls for cls in all_subclasses(BodhiError) if cls.__module__.startswith("bodhi_")}
    parents = drawn_parents()
    assert len(classes) > 10
    assert parents["InvalidRequest"] == "BodhiError"  # the parse reads the trees at all

    undrawn = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in classes if cls.__name__ not in parents)
    misplaced = sorted(
        f"{cls.__name__} is drawn under {parents[cls.__name__]} but derives from {cls.__bases__[0].__name__}"
        for cls in classes
        if cls.__name__ in parents and parents[cls.__name__] != cls.__bases__[0].__name__
    )

    assert not undrawn, f"error classes missing from the drawn tree in bodhi_shared/errors.py: {undrawn}"
    assert not misplaced, misplaced
