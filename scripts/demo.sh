#!/usr/bin/env bash
# The main job on the embedded default: installs, generates a synthetic bank,
# materializes the latest closed week of the whole graph and prints where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m nbp_assets demo "$@"
