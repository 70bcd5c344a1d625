#!/bin/sh
# rootfs-setup.sh ROOT -- make a fresh mmdebstrap tree a live system image,
# the way a distribution's live image is set up: nothing here knows about
# undercloud or about the config a machine will be given.
#
# - /etc/machine-id says "uninitialized": every boot of the live image is a
#   first boot, so systemd applies the presets Ignition wrote (enable-only)
#   and ConditionFirstBoot= units run, as on Fedora CoreOS and Flatcar.
# - The network is the initramfs's: it leased the address by DHCP before
#   the root existed and the NIC keeps it across switch_root, as Debian's
#   initramfs-tools does with ip=dhcp. Like a Debian minbase system, the
#   image runs no network manager (systemd-networkd stays disabled, also
#   against the presets of a first boot), so network-online.target is
#   reached at once. NICs keep the kernel's names (Debian's documented
#   99-default.link -> /dev/null): udev cannot rename a NIC that is up.
# - Debian enables etcd.service when etcd-server is installed; a live image
#   must not start a default etcd on every machine, so it is disabled (the
#   served config runs its own member unit).
# - Debian's Ignition 2.14 relabels what it writes and reads the policy
#   name from /etc/selinux/config: SELinux is declared disabled.
# - Timers that only make sense on long-lived installed systems are off.
set -eu
R=$1
[ -d "$R/etc" ] || {
	echo "rootfs-setup.sh: $R is not a root tree" >&2
	exit 1
}

printf 'uninitialized\n' >"$R/etc/machine-id"
: >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"

mkdir -p "$R/etc/systemd/network"
ln -sf /dev/null "$R/etc/systemd/network/99-default.link"

cat >"$R/usr/lib/systemd/system-preset/50-live-image.preset" <<'EOF'
# Presets of the live image, applied by systemd on first boot with those of
# the config the machine is given.
disable systemd-networkd.service
disable systemd-networkd-wait-online.service
disable etcd.service
disable apt-daily.timer
disable apt-daily-upgrade.timer
disable dpkg-db-backup.timer
disable e2scrub_all.timer
disable e2scrub_reap.service
disable fstrim.timer
disable getty@.service
EOF
rm -f "$R/etc/systemd/system/multi-user.target.wants/etcd.service" \
	"$R/etc/systemd/system/multi-user.target.wants/e2scrub_reap.service" \
	"$R/etc/systemd/system/getty.target.wants/getty@tty1.service" \
	"$R"/etc/systemd/system/timers.target.wants/*.timer
rm -f "$R"/etc/systemd/system/*.wants/systemd-networkd*

mkdir -p "$R/etc/selinux"
printf 'SELINUX=disabled\nSELINUXTYPE=targeted\n' >"$R/etc/selinux/config"

# The live root is read-only squashfs under a tmpfs overlay: no swap, no fsck.
: >"$R/etc/fstab"
passwd -R "$R" -l root >/dev/null

# What a live image does not need: package caches and documentation.
rm -rf "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/* \
	"$R"/usr/share/info/* "$R"/var/log/*.log "$R"/var/cache/debconf/*-old
