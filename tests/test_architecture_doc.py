"""docs/ARCHITECTURE.md stays true to the code: every dotted name it cites (`dispatch.dispatch`,
`stream_hub.StreamHub`, `RedisKeys.local_queue(alias)`) resolves to something that exists."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

DOC = Path(__file__).parents[1] / "docs" / "ARCHITECTURE.md"
PACKAGES = ("bodhi_shared", "bodhi_api", "bodhi_remote_worker", "bodhi_local_worker", "bodhi_cli")
# `a.b.c` or `a.b(args)`: a dotted Python name, possibly called; file names and the like are not names.
_DOTTED = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?$")
_NOT_NAMES = re.compile(r"\.(py|md|sql|json|pem|html|css|js|png|gguf|ya?ml|toml|sh|txt|log|rdb|sock)$")
# Modules that need llama.cpp or a GPU to import, whose names the doc may cite without importing them here.
_HEAVY = ("bodhi_local_worker.engine", "bodhi_local_worker.generation", "bodhi_local_worker.models")


# Dotted names of the OpenAI wire format and of ASGI, not of the code.
# ASGI message types (`http.disconnect`), Responses events, usage fields (`prompt_tokens_details.cached_tokens`).
_WIRE_FIELDS = ("stream_options.", "http.", "response.", "prompt_tokens_details.")


def cited_names() -> list[str]:
    """Dotted names in inline code and in the fenced diagrams."""
    text = DOC.read_text()
    candidates = [quoted.strip() for quoted in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)]
    for block in re.findall(r"```\n(.*?)```", text, flags=re.DOTALL):
        candidates += re.findall(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", block)
    names = []
    for candidate in candidates:
        match = _DOTTED.match(candidate)
        if match and not _NOT_NAMES.search(match.group(1)) and not match.group(1).startswith(_WIRE_FIELDS):
            names.append(match.group(1))
    return sorted(set(names))


def bodhi_modules() -> dict[str, ModuleType]:
    """Every importable module of Bodhi's packages, by its full name."""
    modules: dict[str, ModuleType] = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        modules[package_name] = package
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if info.name.startswith(_HEAVY):
                continue
            modules[info.name] = importlib.import_module(info.name)
    return modules


def resolves(name: str, modules: dict[str, ModuleType]) -> bool:
    parts = name.split(".")
    starts: list[tuple[object, list[str]]] = []
    for full, module in modules.items():
        for size in range(len(parts), 0, -1):  # `api_models.sealing.x`, `sealing.x`, `bodhi_api.app.x`
            if full == ".".join(parts[:size]) or full.endswith("." + ".".join(parts[:size])):
                starts.append((module, parts[size:]))
        if hasattr(module, parts[0]):  # `RedisKeys.local_queue`: a name defined in some module
            starts.append((getattr(module, parts[0]), parts[1:]))
    for start, rest in starts:
        found: object = start
        for part in rest:
            if not hasattr(found, part) and not (isinstance(found, type) and part in _fields(found)):
                break
            found = getattr(found, part, None)
        else:
            return True
    return any(name.startswith(skipped.split(".", 1)[1]) for skipped in _HEAVY)


def _fields(cls: type) -> set[str]:
    """Attributes a class declares without a class-level value (dataclass and pydantic fields, slots)."""
    declared = set(getattr(cls, "__annotations__", {})) | set(getattr(cls, "model_fields", {}))
    return declared | set(getattr(cls, "__slots__", ()))


def test_the_architecture_doc_cites_only_names_that_exist() -> None:
    modules = bodhi_modules()
    names = cited_names()
    assert len(names) > 30  # the check reads the doc at all

    missing = [name for name in names if not resolves(name, modules)]

    assert not missing, f"docs/ARCHITECTURE.md cites names the code does not have: {missing}"


@pytest.mark.parametrize("name", ["dispatch.dispatch", "stream_hub.StreamHub", "RedisKeys.local_queue"])
def test_real_names_resolve(name: str) -> None:
    assert resolves(name, bodhi_modules())


@pytest.mark.parametrize("name", ["dispatch._check_capacity", "stream_hub.StreamHub.subscribe", "queue.nothing"])
def test_names_that_do_not_exist_do_not_resolve(name: str) -> None:
    assert not resolves(name, bodhi_modules())


def test_the_replica_resources_and_its_stream_hub_import_no_circle() -> None:
    """resources.py builds the StreamHub; the hub must not need resources.py back (it once did, as token_stream)."""
    import ast

    source = Path(importlib.import_module("bodhi_api.stream_hub").__file__ or "").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert "bodhi_api.resources" not in imported
