#!/usr/bin/env bash
# Regenerates every generated file and fails, printing the diff, when any of them differs from what
# is in the tree: crds/ (agility-operator crdgen), charts/agility/crds/ (hack/sync-chart-crds.sh),
# manifests/install.yaml and manifests/argocd/health-checks*.yaml (hack/render-manifests.sh).
# Also fails on generated files git does not know about (a new CRD that was never `git add`ed would
# pass here and be missing from every clone). Leaves the regenerated files in place, so running it
# locally is also the way to refresh them.
set -euo pipefail
cd "$(dirname "$0")/.."

paths=(crds charts/agility/crds manifests/install.yaml manifests/argocd)

before=$(mktemp -d)
gen=$(mktemp -d)
trap 'rm -rf "$before" "$gen"' EXIT
for p in "${paths[@]}"; do
  if [ -e "$p" ]; then
    mkdir -p "$before/$(dirname "$p")"
    cp -a "$p" "$before/$p"
  fi
done

# crdgen writes only the current kinds; generating into an empty directory and replacing crds/
# with it also removes the file of a kind that was dropped or renamed.
cargo run --quiet --locked -p agility-operator -- crdgen --out "$gen" >&2
mkdir -p crds
find crds -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) -delete
shopt -s nullglob
for f in "$gen"/*; do cp "$f" crds/; done
hack/sync-chart-crds.sh
hack/render-manifests.sh

status=0
for p in "${paths[@]}"; do
  if [ -e "$before/$p" ] || [ -e "$p" ]; then
    if ! diff -ruN "$before/$p" "$p" >"$gen/diff" 2>&1; then
      sed "s|$before/||" "$gen/diff"
      status=1
    fi
  fi
done
if [ "$status" -ne 0 ]; then
  echo "check-drift: generated files were stale (now regenerated above); commit the result" >&2
fi

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  untracked=$(git ls-files --others --exclude-standard -- "${paths[@]}")
  if [ -n "$untracked" ]; then
    echo "check-drift: generated files not added to git:" >&2
    echo "$untracked" >&2
    status=1
  fi
fi

if [ "$status" -eq 0 ]; then
  echo "check-drift: crds/, chart CRDs and manifests are current ($(find crds -maxdepth 1 -name '*.yaml' | wc -l) CRD file(s))" >&2
fi
exit "$status"
