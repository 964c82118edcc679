#!/usr/bin/env bash
# Install if needed, then run the self-contained demo: `scripts/demo.sh [--images N] [--keep] ...`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/imagebatch demo "$@"
