#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs, then runs pytest.
# PostgreSQL is started by the tests themselves unless NBP_TEST_POSTGRES_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/browser.sh
# The linter and the formatter first: seconds, and a finding fails the run before the long
# suite starts (`.venv/bin/ruff format nbp_assets nbp_assets_tests benchmarks scripts` fixes the formatting).
.venv/bin/ruff check nbp_assets nbp_assets_tests benchmarks scripts
.venv/bin/ruff format --check nbp_assets nbp_assets_tests benchmarks scripts
set +e
# Two workers (pytest-xdist): most tests wait on processes, servers and sensors, so two at a
# time roughly halve the suite on this 2-core machine. Each worker starts its own PostgreSQL;
# one given by NBP_TEST_POSTGRES_URL is shared, so then the tests run one at a time.
workers="${NBP_TEST_WORKERS:-2}"
if [ -n "${NBP_TEST_POSTGRES_URL:-}" ]; then workers="${NBP_TEST_WORKERS:-0}"; fi
# loadscope: a test module goes to one worker whole, so a module-scoped fixture (a webserver,
# a broker, a whole week on fakesnow) is built once, not once per worker that draws a test of
# it. (loadgroup does nothing with pytest 9.2: xdist 3.8 renames `_nodeid`, which pytest no
# longer reads.)
dist=()
if [ "$workers" != "0" ]; then dist=(--dist loadscope); fi
# --durations: the slowest tests are named at the end of every run, so the suite's time is
# watched where it is spent.
.venv/bin/python -m pytest -n "$workers" "${dist[@]}" --durations=15 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
