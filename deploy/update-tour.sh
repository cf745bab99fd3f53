#!/usr/bin/env bash
# Copy the README tour's pictures from the last browser-test run (tests/ui/test_tour.py writes them under
# BODHI_SCREENSHOT_DIR) into docs/tour/. Run the tests first:  uv run pytest tests/ui/test_tour.py
set -euo pipefail
cd "$(dirname "$0")/.."
shots="${BODHI_SCREENSHOT_DIR:-.bodhi-test/screenshots}"
mkdir -p docs/tour
for name in tour-models-light tour-chat-light tour-chat-dark tour-api-model-light tour-usage-light; do
    cp "$shots/$name.png" "docs/tour/$name.png"
done
ls -l docs/tour
