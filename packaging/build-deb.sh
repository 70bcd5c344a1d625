#!/bin/sh
# build-deb.sh BINARY VERSION OUTDIR: the undercloud Debian package, built
# with dpkg-deb from a staging tree. Prints the path of the .deb.
set -eu

bin=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
# Debian versions start with a digit: v1.2.3-4-gabc -> 1.2.3+4.gabc.
version=$(printf '%s' "$version" | sed -e 's/^v//' -e 's/-/+/' -e 's/-/./g')
case "$version" in [0-9]*.[0-9]*) ;; *) version="0.0.0+$version" ;; esac
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$bin" "$stage/usr/bin/undercloud"
install -D -m 0644 "$here/undercloud.service" "$stage/lib/systemd/system/undercloud.service"
install -D -m 0644 "$here/default" "$stage/etc/default/undercloud"
install -d -m 0750 "$stage/etc/undercloud"
install -m 0600 "$here/secrets.yaml.example" "$stage/etc/undercloud/secrets.yaml.example"
install -d -m 0755 "$stage/DEBIAN"
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$stage/DEBIAN/$s"
done
printf '%s\n' /etc/default/undercloud /etc/undercloud/secrets.yaml.example >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: undercloud
Version: $version
Architecture: $arch
Maintainer: undercloud maintainers <undercloud@localhost>
Installed-Size: $size
Depends: ipxe, passwd
Recommends: git
Section: admin
Priority: optional
Homepage: https://github.com/undercloud/undercloud
Description: bare-metal provisioning server
 Binds git-versioned site configs to bare-metal machines and boots them over
 DHCP, TFTP and iPXE with immutable images and Ignition configs. Runs as the
 systemd service undercloud, as its own user.
CONTROL

mkdir -p "$out"
deb="$out/undercloud_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
