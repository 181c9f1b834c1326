#!/usr/bin/env bash
# Installs the pinned helm and kubeconform with `go install` (Go module proxy only) into
# ~/.cache/agility/tools/<tool>-<version>/bin/. Idempotent: an existing binary of the pinned
# version is kept. Prints one `<tool> <path>` line per tool on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/tools.sh

command -v go >/dev/null || { echo "go is required (Go module proxy builds)" >&2; exit 1; }

# The schema generator reads YAML; lua5.1 runs the Argo CD health check's tests (Argo CD's Lua is 5.1).
missing=()
find_python >/dev/null 2>&1 || missing+=(python3-yaml)
command -v lua5.1 >/dev/null || missing+=(lua5.1)
# SoftHSM2: the KMS's PKCS#11 root key is unit-tested against it.
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || missing+=(softhsm2)
# libfaketime: the OSS tests run Garage at a fake date to prove lifecycle expiry (its worker runs
# once a day, at midnight UTC).
command -v faketime >/dev/null || missing+=(faketime)
# The kernel-feature test VM (e2e/vm/vm.sh): qemu under TCG, and the Debian packages whose
# binaries its initramfs carries (busybox as init and shell, kmod's modprobe, LVM and thin_check,
# util-linux, e2fsprogs, iproute2, ping, ethtool); cpio packs the initramfs, binutils' strip drops
# a test binary's debug info on the way in, jq reads cargo's JSON (`make vm-test`), xz unpacks
# the kernel.
for pkg in qemu-system-x86 busybox-static cpio kmod lvm2 thin-provisioning-tools util-linux \
  e2fsprogs iproute2 iputils-ping ethtool binutils jq xz-utils; do
  dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q ' installed$' || missing+=("$pkg")
done
# MariaDB 10.11 (Debian's): the RDS dataplane tests (operators/rds/tests/dataplane.rs) start their
# own mariadbd processes in temp dirs, so the packaged service must never run: a policy-rc.d that
# denies every start is in place for the install, and the unit is disabled afterwards.
mariadb_missing=
for pkg in mariadb-server mariadb-client mariadb-backup; do
  dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q ' installed$' ||
    { missing+=("$pkg"); mariadb_missing=1; }
done
own_policy=
if [ -n "$mariadb_missing" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  own_policy=1
  # Removed even when apt fails, so later package installs start their services as usual.
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt)" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
fi
if [ -n "$own_policy" ]; then
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi
# The package enables the unit for the next boot even when its start was denied.
if [ -n "$mariadb_missing" ] && [ -d /run/systemd/system ]; then
  systemctl disable --now mariadb >&2 || true
fi

# install <name> <module> <version> <binary path> [ldflags]
install() {
  local name=$1 module=$2 version=$3 bin=$4 ldflags=${5:-}
  local dir partial
  dir=$(dirname "$(dirname "$bin")")
  if [ -x "$bin" ] && [ -f "$dir/.ldflags" ] && [ "$(cat "$dir/.ldflags")" = "$ldflags" ]; then
    echo "$name $version already installed" >&2
  else
    # Build into a scratch dir and move it in place, so an interrupted build never leaves a
    # half-written binary that the next run would take for a finished one.
    partial="$dir.partial"
    rm -rf "$partial"
    mkdir -p "$partial/bin"
    echo "building $name $version (go install $module@$version)" >&2
    GOBIN="$partial/bin" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" \
      go install -ldflags "-s -w $ldflags" "$module@$version" >&2
    printf '%s' "$ldflags" >"$partial/.ldflags"
    rm -rf "$dir"
    mv "$partial" "$dir"
  fi
  echo "$name $bin"
}

# Helm's release builds stamp its version and the Kubernetes version it assumes without a cluster
# (`helm template`, `helm lint`); a plain `go install` would leave v1.20 there.
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$HELM_K8S_MAJOR"
  helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
kubeconform_ldflags="-X main.version=$KUBECONFORM_VERSION"

install helm "$HELM_MODULE" "$HELM_VERSION" "$HELM" "$helm_ldflags"
install kubeconform "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION" "$KUBECONFORM" "$kubeconform_ldflags"

# Warm the module cache with the API documents hack/check-chart.sh validates against, so CI's
# check step does not depend on reaching the proxy.
echo "kubernetes-openapi $(go_module_dir "$KUBERNETES_MODULE@$KUBERNETES_VERSION")/api/openapi-spec/swagger.json"
echo "prometheus-operator-crds $(go_module_dir "$PROMETHEUS_OPERATOR_MODULE@$PROMETHEUS_OPERATOR_VERSION")/example/prometheus-operator-crd"

# The KMS e2e client: boto3 (a real AWS SDK) and cryptography (local AES for envelope
# encryption), pinned, in a venv keyed by the versions.
BOTO3_VERSION=1.44.8
CRYPTOGRAPHY_VERSION=50.0.2
venv="$HOME/.cache/agility/venv-kms-boto3-$BOTO3_VERSION-cryptography-$CRYPTOGRAPHY_VERSION"
# A venv records its own path, so it is built in place; `.complete` marks a finished install.
if [ ! -f "$venv/.complete" ]; then
  echo "creating $venv (pip: boto3 $BOTO3_VERSION, cryptography $CRYPTOGRAPHY_VERSION)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "boto3==$BOTO3_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION" >&2
  touch "$venv/.complete"
fi
echo "python-kms $venv/bin/python"

# Garage (object storage): the OSS tests run it on loopback and e2e/images packs it into the
# garage image. Built once from crates.io (~8 min on 2 cores) into the same per-version cache
# the image builder uses (e2e/images/images.toml), installed into a scratch root first so an
# interrupted build is never taken for a finished one.
GARAGE_VERSION=2.5.0
garage_root="$HOME/.cache/agility/crates/garage-$GARAGE_VERSION"
if [ ! -x "$garage_root/bin/garage" ]; then
  echo "building garage $GARAGE_VERSION (cargo install --locked)" >&2
  rm -rf "$garage_root.partial"
  cargo install --locked --version "$GARAGE_VERSION" --root "$garage_root.partial" garage >&2
  rm -rf "$garage_root"
  mv "$garage_root.partial" "$garage_root"
fi
echo "garage $garage_root/bin/garage"

# The test VM's kernel: Debian's stock kernel package at the version pinned in e2e/vm/kernel.env,
# fetched with `apt-get download` (apt checks it against the signed index; we check the pinned
# SHA256 too), unpacked to vmlinuz, vmlinux and lib/modules/<abi>/ with modules.dep (depmod runs
# in the package's postinst, so the .deb has none). Extracted into a scratch dir and moved in place.
. e2e/vm/kernel.env
if [ ! -f "$VM_KERNEL_DIR/vmlinux" ] || [ ! -f "$VM_KERNEL_DIR/lib/modules/$VM_KERNEL_ABI/modules.dep" ]; then
  echo "fetching linux-image-$VM_KERNEL_ABI $VM_KERNEL_VERSION (apt-get download)" >&2
  partial="$VM_KERNEL_DIR.partial"
  rm -rf "$partial"
  mkdir -p "$partial/deb"
  # _apt cannot write into root's home: download as root, without apt's sandbox.
  if ! (cd "$partial/deb" && apt-get -o APT::Sandbox::User=root download \
    "linux-image-$VM_KERNEL_ABI=$VM_KERNEL_VERSION" >&2); then
    echo "apt does not offer linux-image-$VM_KERNEL_ABI=$VM_KERNEL_VERSION (try apt-get update;" \
      "if the archive moved on, bump e2e/vm/kernel.env)" >&2
    exit 1
  fi
  deb=$(echo "$partial"/deb/*.deb)
  echo "$VM_KERNEL_SHA256  $deb" | sha256sum --check --quiet >&2
  mkdir -p "$partial/x"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$partial/x" ./boot ./lib/modules
  mv "$partial/x/boot/vmlinuz-$VM_KERNEL_ABI" "$partial/vmlinuz"
  mv "$partial/x/boot/config-$VM_KERNEL_ABI" "$partial/config"
  # The uncompressed kernel too: qemu boots its ELF through the PVH entry, which skips the ~5 s
  # the emulated CPU takes to unpack the xz payload of vmlinuz (what scripts/extract-vmlinux does).
  # (`|| true`: grep and tail die of SIGPIPE once head and xz have what they need.)
  xz_at=$({ LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$partial/vmlinuz" || true; } | head -n 1 | cut -d: -f1)
  { tail -c +$((${xz_at:?no xz payload in vmlinuz} + 1)) "$partial/vmlinuz" || true; } |
    xz -dc --single-stream >"$partial/vmlinux"
  [ "$(head -c 4 "$partial/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
    { echo "no ELF kernel inside $partial/vmlinuz" >&2; exit 1; }
  mkdir -p "$partial/lib"
  mv "$partial/x/lib/modules" "$partial/lib/modules"
  rm -rf "$partial/x" "$partial/deb"
  depmod -b "$partial" "$VM_KERNEL_ABI"
  rm -rf "$VM_KERNEL_DIR"
  mv "$partial" "$VM_KERNEL_DIR"
fi
echo "vm-kernel $VM_KERNEL_DIR/vmlinux"
