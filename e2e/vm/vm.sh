#!/usr/bin/env bash
# A small qemu VM for tests that need kernel features this machine's kernel lacks (bonding, 802.1q,
# dummy, device-mapper/LVM thin pools). It boots Debian's stock kernel (e2e/vm/kernel.env, fetched
# by hack/install-tools.sh) under TCG emulation with an initramfs only: busybox as init and shell,
# the needed modules, LVM and friends. No disk, no network device, no udev.
#
#   vm.sh build
#       Builds the base initramfs once (cached by kernel version and a hash of its inputs) and
#       prints its path.
#   vm.sh run [--timeout SECONDS] [--mem MB] [--keep-debug] [--env NAME=VALUE]... -- BINARY [ARGS...]
#       Boots the VM with BINARY (a host binary; its `ldd` libraries go along) in a second initramfs,
#       runs it as root with AGILITY_VM=1 in /tmp, streams the serial console to stdout and exits
#       with BINARY's exit code. RUST_BACKTRACE, RUST_LOG and RUST_TEST_THREADS pass through.
#       Debug info is stripped from the copy unless --keep-debug (test binaries are mostly debug
#       info, and every byte is copied through the emulated machine).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=e2e/vm/kernel.env
. "$here/kernel.env"
cache=${AGILITY_CACHE:-$HOME/.cache/agility}/vm
kdir=$VM_KERNEL_DIR
moddir=$kdir/lib/modules/$VM_KERNEL_ABI

# Modules loaded at boot (their dependencies and soft dependencies come along).
MODULES=(bonding 8021q veth dummy macvlan bridge dm-mod dm-thin-pool dm-snapshot loop ext4)
# Host tools the base initramfs carries, with the libraries `ldd` lists. thin_check & co. are
# links to pdata_tools, dispatched on argv[0]; modprobe & co. are links to kmod.
TOOLS=(/usr/bin/kmod /usr/sbin/lvm /usr/sbin/dmsetup /usr/sbin/pdata_tools /usr/sbin/losetup
  /usr/sbin/blkid /usr/sbin/wipefs /usr/bin/lsblk /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/ip
  /usr/bin/ping /usr/sbin/ethtool)
LINKS=(usr/sbin/modprobe:../bin/kmod usr/sbin/insmod:../bin/kmod usr/sbin/rmmod:../bin/kmod
  usr/sbin/lsmod:../bin/kmod usr/sbin/depmod:../bin/kmod usr/sbin/mkfs.ext4:mke2fs
  usr/sbin/thin_check:pdata_tools usr/sbin/thin_repair:pdata_tools usr/sbin/thin_dump:pdata_tools
  usr/sbin/thin_restore:pdata_tools usr/sbin/thin_metadata_size:pdata_tools)
for c in pvcreate pvremove pvs pvscan vgcreate vgremove vgs vgchange vgextend vgreduce lvcreate \
  lvremove lvs lvchange lvextend lvresize lvconvert; do
  LINKS+=("usr/sbin/$c:lvm")
done
# Environment passed from the host when set.
PASS_ENV=(RUST_BACKTRACE RUST_LOG RUST_TEST_THREADS RUST_MIN_STACK)

die() { echo "vm.sh: $*" >&2; exit 2; }
now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# usr PATH: PATH in the image's merged-/usr layout (/lib, /lib64, /bin, /sbin are links into
# /usr). A payload must not carry a real /lib directory: unpacked over the base, it would replace
# the link and hide /lib/modules.
usr() {
  case $1 in
    /lib/* | /lib64/* | /bin/* | /sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

# copy_with_libs ROOT FILE...: copies each file into ROOT at its (merged-/usr) path, and every
# library ldd lists for it (cp -L: the real file under the name the loader asks for).
copy_with_libs() {
  local root=$1 f lib dest
  shift
  for f in "$@"; do
    dest=$root$(usr "$f")
    mkdir -p "$(dirname "$dest")"
    cp -L "$f" "$dest"
    # ldd fails on a static binary; then there is nothing more to copy.
    for lib in $(ldd "$f" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*' || true); do
      dest=$root$(usr "$lib")
      [ -e "$dest" ] && continue
      mkdir -p "$(dirname "$dest")"
      cp -L "$lib" "$dest"
    done
  done
}

# pack DIR OUT: a newc cpio of DIR, uncompressed (the kernel unpacks it fastest so under TCG).
pack() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$2"; }

# The init script: mounts, modules, loopback, then the payload's /agility/run and the exit marker.
write_init() {
  cat >"$1/init" <<'EOF'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lvm /run/lock/lvm
t=$(cut -d' ' -f1 /proc/uptime)
/usr/sbin/modprobe -a $(cat /etc/agility-vm/modules) || echo "AGILITY-VM: modprobe failed" >&2
/usr/sbin/ip link set lo up
echo "AGILITY-VM-INIT $t $(cut -d' ' -f1 /proc/uptime)"
rc=127
if [ -x /agility/run ]; then
  cd /tmp
  /agility/run
  rc=$?
else
  echo "AGILITY-VM: no payload (/agility/run)"
fi
sync
echo "AGILITY-VM-EXIT $rc"
poweroff -f
EOF
  chmod 755 "$1/init"
}

# The inputs of the base image: this script, the kernel pin and the versions of the packages whose
# files it copies. A change to any of them builds a new image.
base_image() {
  local pkgs hash
  pkgs=$(dpkg-query -W -f='${Package} ${Version}\n' busybox-static kmod lvm2 dmsetup \
    thin-provisioning-tools util-linux e2fsprogs iproute2 iputils-ping ethtool libc6)
  hash=$( (cat "$0" "$here/kernel.env"; echo "$pkgs") | sha256sum | cut -c1-12)
  echo "$cache/initramfs-$VM_KERNEL_ABI-$VM_KERNEL_VERSION-$hash.cpio"
}

build() {
  local out root m link f name applet
  out=$(base_image)
  if [ -f "$out" ]; then
    echo "$out"
    return
  fi
  if [ ! -f "$kdir/vmlinux" ] || [ ! -f "$moddir/modules.dep" ]; then
    die "no kernel in $kdir: run hack/install-tools.sh"
  fi
  if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
    die "needs a static /bin/busybox (busybox-static): run hack/install-tools.sh"
  fi
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/build.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the local is gone when the trap runs
  trap "rm -rf '$root'" EXIT
  # A merged-/usr layout like the host's, so ldd's paths (/lib/..., /lib64/...) land in /usr.
  mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,tmp,run,root,etc/lvm,etc/agility-vm,etc/modprobe.d}
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"

  # Modules: the closure modprobe resolves on the host (host modprobe.d ignored), then depmod for
  # this subset, so modprobe in the VM (and the kernel's request_module) find them.
  local empty
  empty=$(mktemp -d)
  for m in "${MODULES[@]}"; do
    modprobe -C "$empty" -d "$kdir" -S "$VM_KERNEL_ABI" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
  done | sort -u | while read -r f; do
    mkdir -p "$root/usr/lib/modules/$VM_KERNEL_ABI/$(dirname "${f#"$moddir"/}")"
    cp "$f" "$root/usr/lib/modules/$VM_KERNEL_ABI/${f#"$moddir"/}"
  done
  rmdir "$empty"
  cp "$moddir"/modules.{builtin,builtin.modinfo,order} "$root/usr/lib/modules/$VM_KERNEL_ABI/"
  depmod -b "$root/usr" "$VM_KERNEL_ABI"
  echo "${MODULES[*]}" >"$root/etc/agility-vm/modules"
  # No bond0/dummy0 made at load time (what systemd's modprobe.d does on a host): tests make their own.
  printf 'options bonding max_bonds=0\noptions dummy numdummies=0\n' >"$root/etc/modprobe.d/agility-vm.conf"

  copy_with_libs "$root" "${TOOLS[@]}"
  for link in "${LINKS[@]}"; do
    ln -s "${link#*:}" "$root/${link%%:*}"
  done
  # busybox for everything else (sh, mount, poweroff, ...), where no real tool has the name.
  cp /bin/busybox "$root/usr/bin/busybox"
  for applet in $(/bin/busybox --list-full); do
    name=${applet##*/}
    [ -e "$root/usr/bin/$name" ] || [ -e "$root/usr/sbin/$name" ] || [ -L "$root/usr/sbin/$name" ] && continue
    case $applet in
      */sbin/*) ln -s ../bin/busybox "$root/usr/sbin/$name" ;;
      *) ln -s busybox "$root/usr/bin/$name" ;;
    esac
  done

  # LVM without udev: libdevmapper makes the /dev/mapper nodes and lvm the /dev/<vg>/<lv> links;
  # no dmeventd, no lvmpolld; no metadata backups (a throwaway machine, and each write is slow).
  cat >"$root/etc/lvm/lvm.conf" <<'EOF'
devices {
  obtain_device_list_from_udev = 0
  external_device_info_source = "none"
  use_devicesfile = 0
}
activation {
  udev_sync = 0
  udev_rules = 0
  verify_udev_operations = 0
  monitoring = 0
}
global {
  use_lvmpolld = 0
  event_activation = 0
  thin_check_executable = "/usr/sbin/thin_check"
}
backup {
  backup = 0
  archive = 0
}
EOF
  cp /etc/mke2fs.conf "$root/etc/"
  cp -r /etc/iproute2 "$root/etc/"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  printf 'root:x:0:\ndisk:x:6:\n' >"$root/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
  write_init "$root"

  pack "$root" "$out.partial"
  rm -f "$cache"/initramfs-*.cpio # older builds
  mv "$out.partial" "$out"
  rm -rf "$root"
  trap - EXIT
  echo "built $out ($(du -h "$out" | cut -f1))" >&2
  echo "$out"
}

# sq WORD: WORD single-quoted for sh.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

run() {
  local timeout=600 mem=1024 keep_debug=0 envs=() bin base work payload v rc line t0 code=""
  while [ $# -gt 0 ]; do
    case $1 in
      --timeout) timeout=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --keep-debug) keep_debug=1; shift ;;
      --env) envs+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) die "unknown option $1 (usage: vm.sh run [--timeout S] [--mem MB] [--env N=V] -- BINARY [ARGS...])" ;;
    esac
  done
  [ $# -ge 1 ] || die "run needs -- BINARY [ARGS...]"
  bin=$(realpath "$1")
  shift
  [ -x "$bin" ] || die "$bin is not an executable"
  base=$(build)

  # The payload: the binary at /agility/bin/<name>, its libraries, and /agility/run with the
  # environment and arguments.
  work=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  payload=$work/root
  mkdir -p "$payload/agility/bin"
  copy_with_libs "$payload" "$bin"
  mv "$payload$(usr "$bin")" "$payload/agility/bin/"
  if [ $keep_debug = 0 ]; then
    strip --strip-debug "$payload/agility/bin/$(basename "$bin")" 2>/dev/null || true # not ELF: as is
  fi
  {
    echo '#!/bin/sh'
    echo 'export AGILITY_VM=1'
    for v in "${PASS_ENV[@]}"; do
      [ -n "${!v:-}" ] && echo "export $v=$(sq "${!v}")"
    done
    for v in "${envs[@]}"; do
      echo "export ${v%%=*}=$(sq "${v#*=}")"
    done
    printf 'exec %s' "$(sq "/agility/bin/$(basename "$bin")")"
    for v in "$@"; do printf ' %s' "$(sq "$v")"; done
    echo
  } >"$payload/agility/run"
  chmod 755 "$payload/agility/run"
  pack "$payload" "$work/payload.cpio"
  cat "$base" "$work/payload.cpio" >"$work/initrd"
  rm -rf "$payload" "$work/payload.cpio"

  # TCG (KVM hangs on this machine); -cpu max gives SSE4.2 for crc32c-intel. The uncompressed
  # vmlinux boots through its PVH entry and qboot is a minimal firmware: together ~5.5 s faster
  # than SeaBIOS + vmlinuz, whose xz payload the emulated CPU would have to unpack. No NIC: tests
  # build their own links (veth, dummy, bonds). The console is the first serial port, on stdout.
  t0=$(now)
  set +e
  timeout --kill-after=10 "$timeout" qemu-system-x86_64 -accel tcg -cpu max -m "$mem" -smp 2 \
    -bios /usr/share/qemu/qboot.rom -nographic -nodefaults -serial stdio -no-reboot -nic none \
    -kernel "$kdir/vmlinux" -initrd "$work/initrd" \
    -append "console=ttyS0 panic=-1 quiet" </dev/null |
    while IFS= read -r line || [ -n "$line" ]; do
      line=${line%$'\r'}
      printf '%s\n' "$line"
      case $line in
        AGILITY-VM-INIT\ *)
          read -r _ a b <<<"$line"
          echo "vm: booted in $(secs "$t0" "$(now)") s (guest clock: /init at $a s, modules loaded at $b s)" >&2
          ;;
        AGILITY-VM-EXIT*) echo "${line#AGILITY-VM-EXIT }" >"$work/exit" ;;
      esac
    done
  rc=${PIPESTATUS[0]}
  set -e
  [ -f "$work/exit" ] && code=$(cat "$work/exit")
  echo "vm: total $(secs "$t0" "$(now)") s" >&2
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "vm: TIMEOUT after ${timeout}s ($(basename "$bin"))" >&2
    exit 124
  fi
  if ! [[ $code =~ ^[0-9]+$ ]]; then
    echo "vm: no AGILITY-VM-EXIT marker (qemu exit $rc): the VM died before the binary finished" >&2
    exit 125
  fi
  exit "$code"
}

case ${1:-} in
  build) build ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 build | run [--timeout S] [--mem MB] [--keep-debug] [--env N=V]... -- BINARY [ARGS...]" >&2; exit 2 ;;
esac
