#!/bin/bash
# build.sh OUTDIR -- build the undercloud test node image: a real Debian 12
# live system, PXE-booted the way Fedora CoreOS's live PXE images are.
#
# Writes into OUTDIR:
#   vmlinuz      Debian's kernel
#   initrd.img   /init (this directory), static busybox, the kernel modules it
#                needs, Debian's Ignition with its libraries, the shadow tools
#   rootfs.img   squashfs (zstd) of a Debian bookworm system made by mmdebstrap
#                from Debian's archive: systemd as PID 1,
#                curl, etcd-server and etcd-client (rootfs-setup.sh)
#   disk.img.gz  the install image: an MBR (syslinux), partition 1 FAT
#                "LIVEBOOT" with syslinux, the kernel, the initramfs and
#                rootfs.img, partition 2 declared for the writable layer
#   SHA256SUMS, MANIFEST (packages and host files that went in)
#
# The build is cached outside the clone, in $UNDERCLOUD_IMAGE_CACHE (default
# /var/cache/undercloud/testimage), keyed by a hash of its inputs: these
# scripts, the kernel/busybox/Ignition packages apt resolves, the candidate
# versions of the root's packages and the host files copied in. A second
# build with the same inputs (another clone, a CI run on the same machine)
# only links the cached files into OUTDIR.
#
# Environment:
#   UNDERCLOUD_IMAGE_CACHE  cache folder (see above)
#   UNDERCLOUD_KERNEL_PKG   kernel package (default: what linux-image-amd64 depends on)
#   UNDERCLOUD_IGNITION_BIN use this Ignition binary instead of Debian's 2.14
#   DEBIAN_MIRROR           archive mmdebstrap uses (default: the host's first deb URI)
#
# Needs (Debian 12): apt, dpkg, cpio, kmod, gzip, coreutils, libc-bin,
# util-linux, passwd, mmdebstrap, squashfs-tools, syslinux, syslinux-common,
# mtools, dosfstools, fdisk.
set -euo pipefail
export LC_ALL=C

die() {
	echo "build.sh: $*" >&2
	exit 1
}
[ $# -eq 1 ] || die "usage: build.sh OUTDIR"
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "$1")
CACHEROOT=${UNDERCLOUD_IMAGE_CACHE:-/var/cache/undercloud/testimage}
DEBCACHE=$CACHEROOT/debs
EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
ROOT_PKGS="systemd,systemd-sysv,udev,dbus,curl,ca-certificates,iproute2,procps,etcd-server,etcd-client"
MBR=/usr/lib/syslinux/mbr/mbr.bin

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (Debian package $2)"; }
need apt-get apt
need dpkg-deb dpkg
need cpio cpio
need depmod kmod
need modprobe kmod
need sha256sum coreutils
need ldd libc-bin
need flock util-linux
need mmdebstrap mmdebstrap
need mksquashfs squashfs-tools
need syslinux syslinux
need mcopy mtools
need mkfs.vfat dosfstools
need sfdisk fdisk
[ -f "$MBR" ] || die "$MBR not found (Debian package syslinux-common)"
SHADOW_TOOLS="useradd usermod userdel groupadd groupmod groupdel"
for t in $SHADOW_TOOLS; do [ -x "/usr/sbin/$t" ] || die "/usr/sbin/$t not found (Debian package passwd)"; done
MIRROR=${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
	sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb \(\[[^]]*\] \)\{0,1\}\(http[^ ]*\) .*/\2/p' | grep -v security | head -n 1 || true)}
[ -n "$MIRROR" ] || die "no Debian archive URI in /etc/apt/sources*; set DEBIAN_MIRROR"

mkdir -p "$DEBCACHE" "$OUT"
exec 9>"$CACHEROOT/.lock"
flock 9 # two test binaries or clones may build at once

# resolve_pkgs prints `'URI' FILE SIZE SHA256:HEX` per package, running
# apt-get update once when the package lists are missing or stale.
KPKG=${UNDERCLOUD_KERNEL_PKG:-}
resolve_pkgs() {
	local k=$KPKG
	if [ -z "$k" ]; then
		k=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
		[ -n "$k" ] || return 1
	fi
	apt-get download --print-uris "$k" busybox-static ignition 2>"$DEBCACHE/resolve.err"
}
if ! URIS=$(resolve_pkgs) || [ "$(echo "$URIS" | grep -c .)" -ne 3 ]; then
	echo "build.sh: resolving packages failed, running apt-get update" >&2
	apt-get update -qq || die "apt-get update failed"
	URIS=$(resolve_pkgs) ||
		die "cannot resolve ${KPKG:-the kernel package of linux-image-amd64}, busybox-static, ignition: $(grep -h . "$DEBCACHE/resolve.err" 2>/dev/null | grep -v '^W:' | tr '\n' ' ')"
	[ "$(echo "$URIS" | grep -c .)" -eq 3 ] || die "apt resolved only: $URIS"
fi

# fetch FILE SHA256 downloads a .deb into the cache unless it is already there.
fetch() {
	local file=$1 sum=$2 pkg=${1%%_*}
	if [ -f "$DEBCACHE/$file" ] && echo "$sum  $DEBCACHE/$file" | sha256sum -c --status; then
		return
	fi
	rm -f "$DEBCACHE/${pkg}"_*.deb
	(cd "$DEBCACHE" && apt-get download -q "$pkg" >"$DEBCACHE/apt.log" 2>&1) ||
		(apt-get update -qq && cd "$DEBCACHE" && apt-get download -q "$pkg" >"$DEBCACHE/apt.log" 2>&1) ||
		die "cannot download $pkg: $(tail -n 3 "$DEBCACHE/apt.log")"
	echo "$sum  $DEBCACHE/$file" | sha256sum -c --status || die "$file: sha256 mismatch after download"
}
DEBS=()
KDEB= BBDEB= IGNDEB=
while read -r uri file size sum; do
	fetch "$file" "${sum#SHA256:}"
	DEBS+=("$file")
	case $file in
	linux-image-*) KDEB=$file ;;
	busybox-static_*) BBDEB=$file ;;
	ignition_*) IGNDEB=$file ;;
	esac
done <<<"$URIS"
[ -n "$KDEB" ] && [ -n "$BBDEB" ] && [ -n "$IGNDEB" ] || die "apt resolved: $URIS"

extract() {
	local d=$DEBCACHE/x-${1%.deb}
	if [ ! -f "$d/.done" ]; then
		rm -rf "$d"
		dpkg-deb -x "$DEBCACHE/$1" "$d" || die "dpkg-deb -x $1 failed"
		touch "$d/.done"
	fi
	echo "$d"
}
BBDIR=$(extract "$BBDEB")
IGNDIR=$(extract "$IGNDEB")
if [ -n "${UNDERCLOUD_IGNITION_BIN:-}" ]; then
	IGNBIN=$(realpath "$UNDERCLOUD_IGNITION_BIN")
else
	IGNBIN=$IGNDIR/usr/lib/dracut/modules.d/30ignition/ignition
fi
[ -x "$IGNBIN" ] || die "no Ignition binary at $IGNBIN"

libs() {
	for b in "$@"; do
		ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
	done | sort -u
}
HOSTBINS="$(for t in $SHADOW_TOOLS; do echo "/usr/sbin/$t"; done)"
HOSTFILES=$( (
	echo "$HOSTBINS"
	libs "$IGNBIN" $HOSTBINS
	echo "$MBR"
) | sort -u)

# The root's package versions, as the host's apt sees them: a new point
# release of any of them gives a new key (and a new root).
ROOTVERS=$(apt-cache policy $(echo "$ROOT_PKGS" | tr ',' ' ') 2>/dev/null | awk '/^[^ ]/{p=$1} /Candidate:/{print p, $2}')
MMDEBSTRAP_OPTS="--variant=minbase --mode=root --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"
ROOTKEY=$( (
	echo "mirror $MIRROR root $ROOT_PKGS mmdebstrap $MMDEBSTRAP_OPTS"
	echo "$ROOTVERS"
) | sha256sum | cut -c1-16)
KEY=$( (
	echo "epoch $EPOCH mirror $MIRROR rootfs $ROOTKEY"
	sha256sum "$HERE/build.sh" "$HERE/init" "$HERE/udhcpc.script" "$HERE/setfiles" "$HERE/rootfs-setup.sh" | sed "s#$HERE/##"
	for d in "${DEBS[@]}"; do echo "deb $d"; done
	sha256sum "$IGNBIN" | sed 's/ .*/  ignition/'
	for f in $HOSTFILES; do echo "$(sha256sum <"$f" | cut -d' ' -f1)  $f"; done
) | sha256sum | cut -c1-16)
BUILT=$CACHEROOT/$KEY
FILES="vmlinuz initrd.img rootfs.img disk.img.gz MANIFEST SHA256SUMS"

# publish links the cached build into OUTDIR (copies across file systems).
publish() {
	for f in $FILES; do
		rm -f "$OUT/$f.tmp"
		ln "$BUILT/$f" "$OUT/$f.tmp" 2>/dev/null || cp "$BUILT/$f" "$OUT/$f.tmp"
		mv -f "$OUT/$f.tmp" "$OUT/$f"
	done
	echo "$KEY" >"$OUT/.key"
}
if [ -f "$BUILT/.done" ] && (cd "$BUILT" && sha256sum -c --status SHA256SUMS 2>/dev/null); then
	[ "$(cat "$OUT/.key" 2>/dev/null)" = "$KEY" ] && (cd "$OUT" && sha256sum -c --status SHA256SUMS 2>/dev/null) || publish
	echo "build.sh: $OUT is up to date (cache $BUILT)"
	exit 0
fi

WORK=$(mktemp -d "$CACHEROOT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
T0=$(date +%s)

# --- the root file system -------------------------------------------------
# mmdebstrap's tarball is cached on its own, keyed by the packages alone:
# changing rootfs-setup.sh or the initramfs does not run mmdebstrap again.
ROOTTAR=$CACHEROOT/debootstrap-$ROOTKEY.tar
if [ ! -f "$ROOTTAR" ]; then
	echo "build.sh: mmdebstrap bookworm ($ROOT_PKGS) from $MIRROR"
	mmdebstrap $MMDEBSTRAP_OPTS --include="$ROOT_PKGS" \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		bookworm "$WORK/root.tar" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 ||
		die "mmdebstrap failed: $(tail -n 5 "$WORK/mmdebstrap.log" | tr '\n' ' ')"
	rm -f "$CACHEROOT"/debootstrap-*.tar
	mv "$WORK/root.tar" "$ROOTTAR"
fi
mkdir "$WORK/rootfs"
tar -C "$WORK/rootfs" --numeric-owner -xpf "$ROOTTAR" || die "cannot unpack $ROOTTAR"
sh "$HERE/rootfs-setup.sh" "$WORK/rootfs" || die "rootfs-setup.sh failed"
mksquashfs "$WORK/rootfs" "$WORK/rootfs.img" -comp zstd -Xcompression-level 15 -noappend -quiet \
	-all-time "$EPOCH" -mkfs-time "$EPOCH" -no-xattrs >/dev/null || die "mksquashfs failed"
ROOTLIST=$(chroot "$WORK/rootfs" dpkg-query -W -f '${Package} ${Version}\n' | tr '\n' ' ')
rm -rf "$WORK/rootfs"

# --- the kernel and the initramfs -----------------------------------------
INITRD=$WORK/initrd
KX=$WORK/kernel
echo "build.sh: extracting $KDEB"
dpkg-deb -x "$DEBCACHE/$KDEB" "$KX" || die "dpkg-deb -x $KDEB failed"
KVER=$(ls "$KX/lib/modules")
[ "$(echo "$KVER" | wc -l)" -eq 1 ] || die "expected one kernel in $KDEB, found: $KVER"
depmod -b "$KX" "$KVER" || die "depmod failed"

mkdir -p "$INITRD"/{bin,dev,etc,lib/modules,lib64,proc,run,sys,sysroot,tmp,usr/bin,usr/sbin,usr/share/udhcpc}
install -m 0755 "$HERE/init" "$INITRD/init"
install -m 0755 "$BBDIR/bin/busybox" "$INITRD/bin/busybox"
install -m 0755 "$HERE/udhcpc.script" "$INITRD/usr/share/udhcpc/default.script"
install -m 0755 "$HERE/setfiles" "$INITRD/usr/sbin/setfiles"
install -m 0755 "$IGNBIN" "$INITRD/usr/bin/ignition"
for t in $SHADOW_TOOLS; do install -m 0755 "/usr/sbin/$t" "$INITRD/usr/sbin/$t"; done
for f in $(libs "$IGNBIN" $HOSTBINS); do
	install -D -m 0755 "$(realpath "$f")" "$INITRD$f"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$INITRD/etc/passwd"
printf 'root:x:0:\n' >"$INITRD/etc/group"

# The modules /init loads, with their dependencies, in the order modprobe
# would load them: network, block device, root image, overlay and the file
# systems of an installed disk.
: >"$INITRD/lib/modules/load.order"
for m in virtio_pci virtio_net virtio_blk loop squashfs overlay ext4 crc32c_generic vfat nls_cp437 nls_ascii; do
	modprobe -d "$KX" -S "$KVER" --show-depends "$m" || die "modprobe --show-depends $m failed"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
	install -m 0644 "$ko" "$INITRD/lib/modules/"
	basename "$ko" >>"$INITRD/lib/modules/load.order"
done
for m in virtio_net squashfs overlay; do
	grep -q "^$m\.ko" "$INITRD/lib/modules/load.order" || die "module $m not found in $KDEB"
done

find "$INITRD" -exec touch -h -d "@$EPOCH" {} +
(cd "$INITRD" && find . -print0 | sort -z | cpio -o -0 -H newc -R 0:0 --reproducible --quiet) |
	gzip -n -9 >"$WORK/initrd.img"
install -m 0644 "$KX/boot/vmlinuz-$KVER" "$WORK/vmlinuz"

# --- the install image ----------------------------------------------------
# Partition 1 holds what syslinux boots and the root image; partition 2 is
# declared only (the installer makes its file system), so the image stays
# the size of partition 1.
P1MB=$(( ($(stat -c %s "$WORK/vmlinuz") + $(stat -c %s "$WORK/initrd.img") + $(stat -c %s "$WORK/rootfs.img")) / 1048576 + 24 ))
DISK=$WORK/disk.img
truncate -s $(( (P1MB + 1 + 256) * 1048576 )) "$DISK" # sparse; cut to partition 1 below
sfdisk -q "$DISK" <<EOF || die "sfdisk failed"
label: dos
start=2048, size=$((P1MB * 2048)), type=e, bootable
start=$(((P1MB + 1) * 2048)), size=524288, type=83
EOF
mkfs.vfat -F 16 -n LIVEBOOT -h 2048 --offset 2048 -i 4c495645 "$DISK" $((P1MB * 1024)) >/dev/null || die "mkfs.vfat failed"
cat >"$WORK/syslinux.cfg" <<'EOF'
DEFAULT live
TIMEOUT 0
PROMPT 0
LABEL live
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND live.disk=LIVEBOOT console=ttyS0 systemd.show_status=1 systemd.status_unit_format=name quiet panic=10
EOF
export MTOOLS_SKIP_CHECK=1
syslinux --offset 1048576 --install "$DISK" || die "syslinux --install failed"
mcopy -i "$DISK@@1048576" "$WORK/syslinux.cfg" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/rootfs.img" :: ||
	die "mcopy to the install image failed"
dd if="$MBR" of="$DISK" bs=440 count=1 conv=notrunc status=none
truncate -s $(( (P1MB + 1) * 1048576 )) "$DISK"
gzip -n -1 <"$DISK" >"$WORK/disk.img.gz"
rm -f "$DISK"

touch -d "@$EPOCH" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/rootfs.img" "$WORK/disk.img.gz"
(cd "$WORK" && sha256sum vmlinuz initrd.img rootfs.img disk.img.gz >SHA256SUMS)
{
	echo "kernel $KVER"
	for d in "${DEBS[@]}"; do echo "deb $d"; done
	echo "ignition $("$IGNBIN" -version 2>&1 | head -n 1)"
	for f in $HOSTFILES; do echo "host $f $( (dpkg -S "$f" || dpkg -S "$(realpath "$f")") 2>/dev/null | cut -d: -f1 | head -n 1)"; done
	echo "modules $(tr '\n' ' ' <"$INITRD/lib/modules/load.order")"
	echo "root $ROOTLIST"
	for f in vmlinuz initrd.img rootfs.img disk.img.gz; do echo "size $f $(stat -c %s "$WORK/$f")"; done
} >"$WORK/MANIFEST"
rm -rf "$BUILT" "$INITRD" "$KX"
mkdir -p "$BUILT"
for f in $FILES; do mv "$WORK/$f" "$BUILT/"; done
touch "$BUILT/.done"
publish
# Keep the three newest builds (other clones may use older scripts).
ls -1dt "$CACHEROOT"/[0-9a-f]*[0-9a-f] 2>/dev/null | grep -E '/[0-9a-f]{16}$' | tail -n +4 | xargs -r rm -rf
echo "build.sh: built $BUILT in $(($(date +%s) - T0)) s: $(cd "$BUILT" && du -h vmlinuz initrd.img rootfs.img disk.img.gz | tr '\t\n' ': ')"
