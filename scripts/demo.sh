#!/usr/bin/env bash
# Set up the venv if needed, then run the demo: ./scripts/demo.sh [options of `rtformer demo`]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/rtformer demo "$@"
