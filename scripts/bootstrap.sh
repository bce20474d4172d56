#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs the project with its pinned dependencies.
# Idempotent: a re-run with an unchanged pyproject.toml does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$PY" --version 2>&1)..."
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "installing pinned dependencies into .venv (first run: about 1.5 minutes; pip's output: .venv/pip-install.log)"
  # pip's output goes to the log; a few progress lines (scripts/pip-progress.awk) are shown,
  # and the log's end if the install fails.
  # Unbuffered: through a pipe, pip would otherwise write its lines in 8 KB bursts.
  if ! PYTHONUNBUFFERED=1 .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e '.[dev]' 2>&1 \
      | tee .venv/pip-install.log | awk -f scripts/pip-progress.awk; then
    tail -n 50 .venv/pip-install.log >&2
    echo "pip install failed: full log in .venv/pip-install.log" >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
  echo "dependencies installed: .venv is ready"
fi
