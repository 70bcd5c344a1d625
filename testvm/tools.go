package testvm

import (
	"fmt"
	"os/exec"
)

// debianPackage names the Debian package that ships a host program the lab
// runs, so a missing tool fails with the line to add to the Makefile.
func debianPackage(program string) string {
	switch program {
	case "qemu-system-x86_64":
		return "qemu-system-x86"
	case "ip":
		return "iproute2"
	case "dnsmasq":
		return "dnsmasq-base"
	case "ipmi_sim":
		return "openipmi"
	case "ipmitool":
		return "ipmitool"
	case "socat":
		return "socat"
	case "bash":
		return "bash"
	default:
		return ""
	}
}

// lookTool finds a host program or explains which package provides it.
func lookTool(program string) (string, error) {
	p, err := exec.LookPath(program)
	if err != nil {
		if pkg := debianPackage(program); pkg != "" {
			return "", fmt.Errorf("%s not found: apt-get install %s", program, pkg)
		}
		return "", fmt.Errorf("%s not found in PATH", program)
	}
	return p, nil
}

// Firmware files of Debian's ovmf and ipxe packages.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	ipxeDir  = "/usr/lib/ipxe"
	// virtioROM is the NIC ROM of ipxe-qemu that QEMU's virtio-net-pci uses.
	virtioROM = "/usr/lib/ipxe/qemu/efi-virtio.rom"
)
