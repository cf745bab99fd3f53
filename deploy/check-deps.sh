#!/usr/bin/env bash
# CI: deptry once per project of the workspace, each against its own pyproject.toml (what that project declares):
# the root package (src/bodhi_cli) with the root's [tool.deptry], then each member's src/ from its own directory.
# Zero findings, or the step fails.
#
# The ignores below are the whole list of what a member imports without declaring it (deptry's DEP003, "imported
# but transitive": it arrives through another dependency). Each name is a dependency to add to that member's
# [project.dependencies] (then `uv lock`) and to remove from here; DEP002 uvloop stays (see below).
set -euo pipefail
cd "$(dirname "$0")/.."
deptry="$PWD/.venv/bin/deptry"

run() {  # directory [deptry options...]
    local dir="$1"
    shift
    echo "deptry: $dir"
    if [ "$dir" = . ]; then
        "$deptry" --no-ansi . "$@"
    else
        (cd "$dir" && "$deptry" --no-ansi src "$@")
    fi
}

run .
# pydantic_core comes with pydantic (which pins it exactly).
run shared --per-rule-ignores "DEP003=pydantic_core"
# pydantic_core through pydantic, which pins it exactly.
run services/api --per-rule-ignores "DEP003=pydantic_core"
# uvloop: declared for the `bodhi remote-worker` / `bodhi local-worker` commands (src/bodhi_cli), which run the
# worker on it; the member's own code does not import it.
run services/remote_worker --per-rule-ignores "DEP002=uvloop"
run services/local_worker --per-rule-ignores "DEP002=uvloop"
