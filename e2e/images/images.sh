#!/usr/bin/env bash
# Builds or imports the images of e2e/images/images.toml (tool: the agility-images crate).
#   images.sh build <name>...|--all                    archives to ~/.cache/agility/images/<name>.tar
#   images.sh import <name>...|--all [--kind CLUSTER]  into the local node's containerd, or into kind
#   images.sh list
# Environment: AGILITY_CONTAINERD_ADDRESS (containerd socket), AGILITY_IMAGES_DIR (archive dir),
# SOURCE_DATE_EPOCH (timestamps inside the images; 0 when unset).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
# Release build: the tool gzips tens of MiB, which a debug build does several times slower.
cargo build --release --locked -q -p agility-images
exec "${CARGO_TARGET_DIR:-target}/release/agility-images" "$@"
