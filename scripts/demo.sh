#!/usr/bin/env bash
# The demo on a fresh machine: installs what it lacks (scripts/setup.sh), then runs the whole
# job against throwaway local servers (deno task demo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
deno task demo
