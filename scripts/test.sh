#!/usr/bin/env bash
# Sets the machine up (scripts/setup.sh), runs the whole test suite with coverage and prints the
# coverage summary of lib/. Exits non-zero when a test fails. Callable from any folder.
#   bash scripts/test.sh [extra deno test args, e.g. a filter or test files]
#   VYA_TEST_MATRIX=full bash scripts/test.sh    # also PostgreSQL 16/17/18 and MySQL 9 (CI)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
# VYA_TEST_MATRIX=full adds PostgreSQL 16-18 and MySQL 9 (installed under /opt/vya-matrix).
if [ "${VYA_TEST_MATRIX:-minimal}" = full ]; then bash scripts/setup-matrix.sh; fi

rm -rf coverage
status=0
if [ $# -gt 0 ]; then
  deno test -A --coverage=coverage/ "$@" || status=$?
else
  # --parallel is safe: every test module starts its own servers on free ports in its own folder.
  deno test -A --parallel --coverage=coverage/ tests/ || status=$?
fi

if [ -d coverage ]; then
  report=$(deno coverage coverage/ --include='^file://'"$PWD"'/lib/' 2>&1) || true
  echo "$report"
  # The "All files" row carries the totals: | File | Branch % | Line % |
  line=$(printf '%s\n' "$report" | sed 's/\x1b\[[0-9;]*m//g' | awk -F'|' '/All files/ {gsub(/ /,"",$(NF-1)); print $(NF-1)}')
  [ -n "$line" ] && echo "lib/ line coverage: ${line}%"
fi
exit "$status"
