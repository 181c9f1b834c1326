#!/usr/bin/env bash
# Copies the generated CRDs (top-level crds/, written by `agility-operator crdgen`) into the chart's
# crds/ directory, removing chart CRDs that no longer exist. crds/ is the single source.
set -euo pipefail
cd "$(dirname "$0")/.."
src=crds
dst=charts/agility/crds
mkdir -p "$dst"
shopt -s nullglob
for f in "$dst"/*.yaml "$dst"/*.yml "$dst"/*.json; do
  [ -e "$src/$(basename "$f")" ] || { rm -f "$f"; echo "removed $f" >&2; }
done
n=0
for f in "$src"/*.yaml; do
  cp "$f" "$dst/$(basename "$f")"
  n=$((n + 1))
done
echo "synced $n CRD file(s) into $dst" >&2
