// Package testvm is the lab harness: it boots real QEMU virtual machines over
// PXE inside private network namespaces, so every claim about booting is proven
// by a machine actually booting.
//
// A [Lab] is a network namespace with a bridge (the provisioning network), an
// always-up veth port so the bridge has carrier before any VM runs, an IPv6
// router advertisement sender (so iPXE does not wait ~13 s for one, whatever
// DHCP server is under test), one tap per [VM] and optionally a veth pair to the
// host namespace. Servers under test run inside it with [Lab.Start] (a command
// under `ip netns exec`) or listen inside it with [Lab.Listen] from this
// process. A VM is qemu-system-x86_64 (q35, virtio-net with the iPXE ROM of
// Debian's ipxe-qemu, SeaBIOS or OVMF, TCG unless a probe boot proved KVM works)
// whose serial console is read line by line ([Console]) and whose QMP monitor
// ([QMP]) resets, stops and resumes it. A [BMC] is OpenIPMI's ipmi_sim answering
// IPMI over LAN inside the namespace and driving its VM over a second QMP
// socket. [Baseline] is dnsmasq plus a small Go HTTP server serving the test
// image: the comparison point for the real server.
//
// # The test node image
//
// testvm/image/build.sh builds a real Debian 12 system from Debian's
// archive ([BuildImage]), PXE-booted the way Fedora CoreOS's live images
// are: a kernel, an initramfs and a squashfs root (mmdebstrap: systemd,
// curl, etcd-server, etcd-client), plus an install image
// for disks. The initramfs's /init is generic: DHCP, the root fetched from
// coreos.live.rootfs_url and checked against the digest in its URL, an
// overlay over it, Debian's real Ignition (fetch, then files) against that
// root, then switch_root to systemd as PID 1, which runs what Ignition
// wrote. With coreos.inst.install_dev it writes the disk image named by
// coreos.inst.image_url to the disk first and boots from what it wrote;
// later boots from that disk (live.disk=) skip Ignition. It knows nothing of
// undercloud: a machine reports back only because the served config carries
// undercloud-booted.service and the heartbeat timer (ignition/report.go).
//
// What the harness reads on the serial console (see [MarkInit] and the
// other marks; matched as substrings, colour codes removed): the
// initramfs's "live-init: ..." lines, then systemd's status lines
// (systemd.show_status=1) such as "Finished undercloud-booted.service" and
// "Reached target multi-user.target", and the journal where the served
// config forwards it there (the lab site's common snippet does). What the
// machine's Ignition wrote is not read from the console: the booted report
// in the inventory lists every file with its sha256, and tests compare it
// with `undercloud render`.
//
// The image's Ignition is Debian's ignition 2.14 package (config spec <= 3.3.0):
// it comes with apt like the kernel, needs no cgo build, and the example site
// declares spec 3.3.0. Set UNDERCLOUD_IGNITION_BIN when building to embed
// another binary (e.g. v2.26 for spec 3.4+).
//
// # Measured on the 2-core lab machine (TCG, KVM unusable)
//
// Power-on to "booted posted": BIOS 10-13 s alone, UEFI 13-17 s; with two VMs
// at once and -race, BIOS ~18 s. Of a BIOS boot, ~2.2 s is SeaBIOS plus the
// ROM's fixed "Press Ctrl-B" pause, DHCP to boot.ipxe takes ~50 ms, the kernel
// starts ~3 s after iPXE has the initrd (bzImage decompression) and reaches
// /init ~3 s later, Ignition's two stages take ~2 s. Without the lab's RAs,
// iPXE's "Configuring (net0 ...)" took 16 s instead of 45 ms.
//
// Everything needs root and these Debian packages: qemu-system-x86, ipxe-qemu,
// ipxe, ovmf, openipmi, ipmitool, dnsmasq-base, iproute2, socat, plus what
// build.sh lists. A missing tool is an error naming its package, never a skip.
package testvm
