#!/usr/bin/env bash
# Installs what the local cluster needs on a fresh Debian bookworm machine (idempotent): container
# runtime and networking packages from Debian, then the pinned component builds (cached).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (apt-get, network namespaces, mounts)"
setup_start=$SECONDS

# Debian packages: the container runtime (containerd 1.6, runc), CNI plugins (/usr/lib/cni),
# iptables (nft backend) for kube-proxy and kube-router, ipset for kube-router, conntrack, openssl
# for the certificates, dig for the DNS checks, gcc for the sandbox image, busybox for test tools.
packages=(containerd runc containernetworking-plugins iptables ipset conntrack openssl dnsutils curl iproute2
  util-linux bc gcc libc6-dev busybox-static redis-server redis-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # Debian starts services on install where it can; the harness runs its own containerd and
  # redis-server is only a source of image files.
  for svc in containerd redis-server; do
    if [ -x "/etc/init.d/$svc" ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

"$CLUSTER_DIR/build-components.sh"
log "host ready in $((SECONDS - setup_start))s"
