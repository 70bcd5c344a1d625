#!/bin/bash
# build.sh OUTDIR -- build the undercloud test node image.
#
# Writes OUTDIR/vmlinuz, OUTDIR/initrd.img, OUTDIR/SHA256SUMS and OUTDIR/MANIFEST
# (which packages and host files went in). Nothing is installed on the host: the
# kernel, busybox-static and Ignition come from `apt-get download` + `dpkg-deb -x`.
#
# The initrd holds /init (this directory), static busybox, virtio_net and the
# modules it needs, Debian's real Ignition binary with its shared libraries and
# loader, and the host's shadow tools (useradd/usermod/...) that Ignition calls.
#
# Reproducible: sorted cpio, fixed mtimes and owners, gzip -n, so the same inputs
# give the same sha256. Idempotent: when the inputs (package files, host files,
# these scripts) hash to OUTDIR/.stamp and SHA256SUMS verifies, it exits at once.
#
# Environment:
#   UNDERCLOUD_KERNEL_PKG   kernel package (default: what linux-image-amd64 depends on)
#   UNDERCLOUD_IGNITION_BIN use this Ignition binary instead of Debian's 2.14
#                           (e.g. a v2.26 build with selinuxRelabel=false)
#   SOURCE_DATE_EPOCH       mtime of every initrd entry (default 1700000000)
#
# Needs (Debian 12): apt, dpkg, cpio, kmod, gzip, coreutils, libc-bin, util-linux, passwd.
set -euo pipefail
export LC_ALL=C

die() {
	echo "build.sh: $*" >&2
	exit 1
}
[ $# -eq 1 ] || die "usage: build.sh OUTDIR"
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "$1")
CACHE=$OUT/.cache
EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (Debian package $2)"; }
need apt-get apt
need apt-cache apt
need dpkg-deb dpkg
need cpio cpio
need depmod kmod
need modprobe kmod
need gzip gzip
need sha256sum coreutils
need ldd libc-bin
need flock util-linux
SHADOW_TOOLS="useradd usermod userdel groupadd groupmod groupdel"
for t in $SHADOW_TOOLS; do [ -x "/usr/sbin/$t" ] || die "/usr/sbin/$t not found (Debian package passwd)"; done

mkdir -p "$CACHE"
exec 9>"$OUT/.lock"
flock 9 # two test binaries may build the same OUTDIR at once

# resolve_pkgs prints `'URI' FILE SIZE SHA256:HEX` per package, running
# apt-get update once when the package lists are missing or stale.
KPKG=${UNDERCLOUD_KERNEL_PKG:-}
resolve_pkgs() {
	local k=$KPKG
	if [ -z "$k" ]; then
		k=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
		[ -n "$k" ] || return 1
	fi
	apt-get download --print-uris "$k" busybox-static ignition 2>"$CACHE/resolve.err"
}
if ! URIS=$(resolve_pkgs) || [ "$(echo "$URIS" | grep -c .)" -ne 3 ]; then
	echo "build.sh: resolving packages failed, running apt-get update" >&2
	apt-get update -qq || die "apt-get update failed"
	URIS=$(resolve_pkgs) ||
		die "cannot resolve ${KPKG:-the kernel package of linux-image-amd64}, busybox-static, ignition: $(grep -h . "$CACHE/resolve.err" 2>/dev/null | grep -v '^W:' | tr '\n' ' ')"
	[ "$(echo "$URIS" | grep -c .)" -eq 3 ] || die "apt resolved only: $URIS"
fi

# fetch FILE SHA256 downloads a .deb into the cache unless it is already there.
fetch() {
	local file=$1 sum=$2 pkg=${1%%_*}
	if [ -f "$CACHE/$file" ] && echo "$sum  $CACHE/$file" | sha256sum -c --status; then
		return
	fi
	rm -f "$CACHE/${pkg}"_*.deb
	(cd "$CACHE" && apt-get download -q "$pkg" >"$CACHE/apt.log" 2>&1) ||
		(apt-get update -qq && cd "$CACHE" && apt-get download -q "$pkg" >"$CACHE/apt.log" 2>&1) ||
		die "cannot download $pkg: $(tail -n 3 "$CACHE/apt.log")"
	echo "$sum  $CACHE/$file" | sha256sum -c --status || die "$file: sha256 mismatch after download"
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

# The small packages stay extracted in the cache (keyed by file name) so the
# up-to-date check can ldd the Ignition binary without unpacking again.
extract() {
	local d=$CACHE/x-${1%.deb}
	if [ ! -f "$d/.done" ]; then
		rm -rf "$d"
		dpkg-deb -x "$CACHE/$1" "$d" || die "dpkg-deb -x $1 failed"
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

# libs BIN... lists the shared libraries (and loader) the binaries load.
libs() {
	for b in "$@"; do
		ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
	done | sort -u
}
HOSTFILES=$( (
	for t in $SHADOW_TOOLS; do echo "/usr/sbin/$t"; done
	libs "$IGNBIN" $(for t in $SHADOW_TOOLS; do echo "/usr/sbin/$t"; done)
) | sort -u)

STAMP=$( (
	echo "epoch $EPOCH"
	sha256sum "$HERE/build.sh" "$HERE/init" "$HERE/udhcpc.script" "$HERE/setfiles" | sed "s#$HERE/##"
	for d in "${DEBS[@]}"; do echo "deb $d"; done
	sha256sum "$IGNBIN" | sed 's/ .*/  ignition/'
	for f in $HOSTFILES; do echo "$(sha256sum <"$f" | cut -d' ' -f1)  $f"; done
) | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ] &&
	(cd "$OUT" && sha256sum -c --status SHA256SUMS 2>/dev/null); then
	echo "build.sh: $OUT is up to date ($(cut -c1-12 "$OUT/SHA256SUMS" | tr '\n' ' '))"
	exit 0
fi

WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
KX=$WORK/kernel

echo "build.sh: extracting $KDEB"
dpkg-deb -x "$CACHE/$KDEB" "$KX" || die "dpkg-deb -x $KDEB failed"
KVER=$(ls "$KX/lib/modules")
[ "$(echo "$KVER" | wc -l)" -eq 1 ] || die "expected one kernel in $KDEB, found: $KVER"
depmod -b "$KX" "$KVER" || die "depmod failed"

mkdir -p "$ROOT"/{bin,dev,etc,home,lib/modules,lib64,proc,root,run,sys,sysroot,tmp,usr/bin,usr/sbin,usr/share/udhcpc}
install -m 0755 "$HERE/init" "$ROOT/init"
install -m 0755 "$BBDIR/bin/busybox" "$ROOT/bin/busybox"
install -m 0755 "$HERE/udhcpc.script" "$ROOT/usr/share/udhcpc/default.script"
install -m 0755 "$HERE/setfiles" "$ROOT/usr/sbin/setfiles"
install -m 0755 "$IGNBIN" "$ROOT/usr/bin/ignition"
for t in $SHADOW_TOOLS; do install -m 0755 "/usr/sbin/$t" "$ROOT/usr/sbin/$t"; done
for f in $(libs "$IGNBIN" $(for t in $SHADOW_TOOLS; do echo "/usr/sbin/$t"; done)); do
	install -D -m 0755 "$(realpath "$f")" "$ROOT$f"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\n' >"$ROOT/etc/group"

# virtio_pci (the transport) and virtio_net with their dependencies, in the
# order modprobe would load them; duplicates and built-ins dropped.
: >"$ROOT/lib/modules/load.order"
for m in virtio_pci virtio_net; do
	modprobe -d "$KX" -S "$KVER" --show-depends "$m" || die "modprobe --show-depends $m failed"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
	install -m 0644 "$ko" "$ROOT/lib/modules/"
	basename "$ko" >>"$ROOT/lib/modules/load.order"
done
grep -q virtio_net "$ROOT/lib/modules/load.order" || die "virtio_net module not found in $KDEB"

find "$ROOT" -exec touch -h -d "@$EPOCH" {} +
(cd "$ROOT" && find . -print0 | sort -z | cpio -o -0 -H newc -R 0:0 --reproducible --quiet) |
	gzip -n -9 >"$WORK/initrd.img"
install -m 0644 "$KX/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
touch -d "@$EPOCH" "$WORK/vmlinuz" "$WORK/initrd.img"
(cd "$WORK" && sha256sum vmlinuz initrd.img >SHA256SUMS)
{
	echo "kernel $KVER"
	for d in "${DEBS[@]}"; do echo "deb $d"; done
	echo "ignition $("$IGNBIN" -version 2>&1 | head -n 1)"
	for f in $HOSTFILES; do echo "host $f $( (dpkg -S "$f" || dpkg -S "$(realpath "$f")") 2>/dev/null | cut -d: -f1 | head -n 1)"; done
	echo "modules $(tr '\n' ' ' <"$ROOT/lib/modules/load.order")"
} >"$WORK/MANIFEST"
mv -f "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/MANIFEST" "$OUT/"
mv -f "$WORK/SHA256SUMS" "$OUT/SHA256SUMS"
echo "$STAMP" >"$OUT/.stamp"
echo "build.sh: built $OUT: $(du -h "$OUT/initrd.img" | cut -f1) initrd, kernel $KVER"
cat "$OUT/SHA256SUMS"
