#!/usr/bin/env bash
# Runs the whole test suite: unit, kernel and integration tiers, in one
# node:test run (one summary). Installs and builds first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" -ne 0 ]; then
  echo "the kernel and integration tests need root; run: sudo bash scripts/test.sh" >&2
  exit 1
fi
# One file at a time: integration tests share the host's kernel hooks and
# would only measure each other's noise if run together.
exec node --test --test-concurrency=1 dist/src dist/bench dist/test "$@"
