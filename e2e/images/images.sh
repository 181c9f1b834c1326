#!/usr/bin/env bash
# Builds or imports the images of e2e/images/images.toml.
#   images.sh build <name>...|--all     archives to ~/.cache/agility/images/<name>.tar
#   images.sh import <name>...|--all [--kind CLUSTER]
set -euo pipefail
cd "$(dirname "$0")/../.."
cmd=${1:?usage: images.sh build|import|list <name>...|--all}
shift
args=()
for a in "$@"; do
  [ "$a" = "--all" ] || args+=("$a")
done
cargo build --release --locked -q -p agility-images
exec "${CARGO_TARGET_DIR:-target}/release/agility-images" "$cmd" "${args[@]}"
