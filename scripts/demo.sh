#!/usr/bin/env bash
# Brings up the mesh and its demo on this host: installs, builds, `ebmesh up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bin/ebmesh up "$@"
