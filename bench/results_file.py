"""bench/RESULTS.md holds one section per benchmark; each run rewrites its own section and keeps the others."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str, *, path: Path = RESULTS) -> None:
    """Replace the section ``name`` (between its markers) with ``text``, or add it at the end."""
    begin, end = f"<!-- begin: {name} -->", f"<!-- end: {name} -->"
    section = f"{begin}\n{text.rstrip()}\n{end}\n"
    current = path.read_text() if path.exists() else ""
    if begin in current and end in current:
        before, rest = current.split(begin, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        path.write_text(before + section + ("\n" + after if after else ""))
    elif current.strip() and begin not in current:
        path.write_text(current.rstrip() + "\n\n" + section)
    else:
        path.write_text(section)
