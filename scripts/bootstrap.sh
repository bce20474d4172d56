#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs the project with its pinned dependencies.
# Idempotent: a re-run with an unchanged pyproject.toml does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "installing pinned dependencies into .venv (first run: about 1.5 minutes)..."
  # pip's output goes to a log; it is shown only if the install fails.
  if ! .venv/bin/python -m pip install --disable-pip-version-check -e '.[dev]' > .venv/pip-install.log 2>&1; then
    tail -n 50 .venv/pip-install.log >&2
    echo "pip install failed: full log in .venv/pip-install.log" >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
