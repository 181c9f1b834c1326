#!/usr/bin/env bash
# `make vm-test`: builds the node agent's VM tests (operators/node-agent/tests/vm_*.rs) and runs
# each test binary in its own VM (e2e/vm/vm.sh), one test at a time, output shown. Runs them all,
# then fails if any failed. VM_TIMEOUT (seconds, default 600) bounds each VM.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agility/target}

t0=$EPOCHREALTIME
args=()
for f in operators/node-agent/tests/vm_*.rs; do
  [ -e "$f" ] || { echo "vm-test: no operators/node-agent/tests/vm_*.rs" >&2; exit 1; }
  name=${f##*/}
  args+=(--test "${name%.rs}")
done
# Cargo names the test executables in its JSON messages (diagnostics still go to stderr).
mapfile -t bins < <(cargo test -p agility-node-agent --locked "${args[@]}" --no-run \
  --message-format=json-render-diagnostics |
  jq -r 'select(.reason == "compiler-artifact" and .executable != null and .target.kind == ["test"]) | .executable')
[ ${#bins[@]} -gt 0 ] || { echo "vm-test: cargo built no test executable" >&2; exit 1; }
e2e/vm/vm.sh build >/dev/null
t1=$EPOCHREALTIME

failed=()
for bin in "${bins[@]}"; do
  echo "== vm-test: ${bin##*/} (in the VM)"
  e2e/vm/vm.sh run --timeout "${VM_TIMEOUT:-600}" -- "$bin" --test-threads=1 --nocapture || failed+=("${bin##*/}")
done
t2=$EPOCHREALTIME
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n=${#bins[@]} \
  'BEGIN { printf "vm-test: %d binaries; build %.1f s, VMs %.1f s, total %.1f s\n", n, b - a, c - b, c - a }'
if [ ${#failed[@]} -gt 0 ]; then
  echo "vm-test: FAILED: ${failed[*]}" >&2
  exit 1
fi
