package dhcp

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Firmware is the kind of network boot client that sent a request, which
// decides the boot file it is given.
type Firmware int

// The firmwares a request can come from.
const (
	// FirmwareNone is a plain DHCP client (no PXE options, not iPXE): it
	// gets an address only.
	FirmwareNone Firmware = iota
	// FirmwareBIOS is an x86 BIOS PXE ROM (option 93 = 0).
	FirmwareBIOS
	// FirmwareUEFI is x86-64 UEFI PXE (option 93 = 7 or 9).
	FirmwareUEFI
	// FirmwareARM64 is arm64 UEFI PXE (option 93 = 11).
	FirmwareARM64
	// FirmwareHTTP is x86-64 UEFI HTTP boot (option 93 = 16 or vendor class
	// HTTPClient): it is given a URL instead of a TFTP file.
	FirmwareHTTP
	// FirmwareHTTPARM64 is arm64 UEFI HTTP boot (option 93 = 19).
	FirmwareHTTPARM64
	// FirmwareIPXE is iPXE (option 77 user class "iPXE"), whatever the
	// architecture: it chains to the boot script over HTTP.
	FirmwareIPXE
	// FirmwareUnknown is a PXE client of an architecture we have no binary
	// for: it gets no boot file.
	FirmwareUnknown
)

// String returns the firmware's short name, as logged and recorded.
func (f Firmware) String() string {
	switch f {
	case FirmwareNone:
		return "none"
	case FirmwareBIOS:
		return "bios"
	case FirmwareUEFI:
		return "uefi-x64"
	case FirmwareARM64:
		return "uefi-arm64"
	case FirmwareHTTP:
		return "http-x64"
	case FirmwareHTTPARM64:
		return "http-arm64"
	case FirmwareIPXE:
		return "ipxe"
	case FirmwareUnknown:
		return "unknown"
	}
	return fmt.Sprintf("firmware(%d)", int(f))
}

// Bootable reports whether the firmware is given a boot file.
func (f Firmware) Bootable() bool {
	return f != FirmwareNone && f != FirmwareUnknown
}

// Boot is what a request says about the client's firmware.
type Boot struct {
	Firmware Firmware
	// Arch is option 93's first value (RFC 4578); meaningful when HasArch.
	Arch    uint16
	HasArch bool
	// VendorClass is option 60, e.g. "PXEClient:Arch:00007:UNDI:003016".
	VendorClass string
	// UserClass is option 77: "iPXE", or RFC 3004 classes joined by ",".
	UserClass string
	// UUID is option 97, the client machine identifier (usually the SMBIOS
	// UUID), formatted from its 16 bytes in wire order; "" when absent.
	UUID string
}

// Client architecture types (option 93, RFC 4578 and the IANA registry).
const (
	archBIOS      = 0
	archEFIx64    = 7
	archEFIBC     = 9
	archEFIARM64  = 11
	archHTTPx64   = 16
	archHTTPARM64 = 19
)

// Classify tells which firmware sent req. iPXE is recognised first, because
// iPXE also sends option 93 and the PXEClient vendor class, and must be
// chained to the script rather than be given itself again (a boot loop).
func Classify(req *dhcpv4.DHCPv4) Boot {
	b := Boot{
		VendorClass: string(req.GetOneOption(dhcpv4.OptionClassIdentifier)),
		UserClass:   userClass(req),
		UUID:        machineUUID(req.GetOneOption(dhcpv4.OptionClientMachineIdentifier)),
	}
	// Option 93 is a list of 16-bit values; clients send one.
	if v := req.GetOneOption(dhcpv4.OptionClientSystemArchitectureType); len(v) >= 2 {
		b.Arch = binary.BigEndian.Uint16(v)
		b.HasArch = true
	}
	b.Firmware = firmware(b, isIPXE(req))
	return b
}

func firmware(b Boot, ipxe bool) Firmware {
	if ipxe {
		return FirmwareIPXE
	}
	// UEFI HTTP boot names itself in the vendor class even when its arch
	// value is one we would otherwise send to TFTP.
	if strings.HasPrefix(b.VendorClass, "HTTPClient") {
		if !b.HasArch {
			return FirmwareHTTP
		}
		switch b.Arch {
		case archBIOS, archEFIx64, archEFIBC, archHTTPx64:
			return FirmwareHTTP
		case archEFIARM64, archHTTPARM64:
			return FirmwareHTTPARM64
		}
		return FirmwareUnknown
	}
	if !b.HasArch {
		if strings.HasPrefix(b.VendorClass, "PXEClient") {
			// PXE without the mandatory option 93: we cannot tell
			// which binary would run.
			return FirmwareUnknown
		}
		return FirmwareNone
	}
	switch b.Arch {
	case archBIOS:
		return FirmwareBIOS
	case archEFIx64, archEFIBC:
		return FirmwareUEFI
	case archEFIARM64:
		return FirmwareARM64
	case archHTTPx64:
		return FirmwareHTTP
	case archHTTPARM64:
		return FirmwareHTTPARM64
	}
	return FirmwareUnknown
}

// isIPXE reports whether option 77 carries the class "iPXE". iPXE sends it
// raw ("iPXE"), RFC 3004 clients length-prefixed; accept both.
func isIPXE(req *dhcpv4.DHCPv4) bool {
	raw := req.GetOneOption(dhcpv4.OptionUserClassInformation)
	if string(raw) == "iPXE" {
		return true
	}
	for _, c := range rfc3004Classes(raw) {
		if c == "iPXE" {
			return true
		}
	}
	return false
}

func userClass(req *dhcpv4.DHCPv4) string {
	raw := req.GetOneOption(dhcpv4.OptionUserClassInformation)
	if cs := rfc3004Classes(raw); cs != nil && string(raw) != "iPXE" {
		return strings.Join(cs, ",")
	}
	return string(raw)
}

// rfc3004Classes parses option 77 as RFC 3004 length-prefixed classes; nil
// when it is not in that format.
func rfc3004Classes(raw []byte) []string {
	var cs []string
	for len(raw) > 0 {
		n := int(raw[0])
		if n == 0 || n+1 > len(raw) {
			return nil
		}
		cs = append(cs, string(raw[1:n+1]))
		raw = raw[n+1:]
	}
	return cs
}

// machineUUID formats option 97 (type 0 followed by a 16-byte UUID, RFC 4578).
func machineUUID(v []byte) string {
	if len(v) != 17 || v[0] != 0 {
		return ""
	}
	u := v[1:]
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// The TFTP boot files, as the pxe package serves them.
const (
	fileBIOS     = "undionly.kpxe"
	fileEFI      = "ipxe.efi"
	fileARM64    = "ipxe-arm64.efi"
	pathScript   = "/boot.ipxe"
	pathFirmware = "/firmware/"
)

// bootConfig is the part of the Server that decides boot files.
type bootConfig struct {
	bootURL   string // base URL of the machine-facing HTTP server, no trailing slash
	efiBinary string // x86-64 UEFI binary, "" = ipxe.efi
	// ipxeScript is the first script iPXE runs, when not bootURL's
	// /boot.ipxe: the TFTP-served one that retries it (Server.IPXEScript).
	ipxeScript string
}

// bootFile returns the file (TFTP) or URL (HTTP boot, iPXE) firmware f is
// given; "" when it gets none.
func bootFile(f Firmware, c bootConfig) string {
	efi := c.efiBinary
	if efi == "" {
		efi = fileEFI
	}
	switch f {
	case FirmwareBIOS:
		return fileBIOS
	case FirmwareUEFI:
		return efi
	case FirmwareARM64:
		return fileARM64
	case FirmwareIPXE:
		if c.ipxeScript != "" {
			// Over TFTP, a script that chains to /boot.ipxe and tries
			// again when that fails: iPXE gives up on a failed first
			// fetch (a server restarting), and TFTP, connectionless, is
			// retried by iPXE's own client.
			return c.ipxeScript
		}
	}
	if c.bootURL == "" {
		return ""
	}
	switch f {
	case FirmwareHTTP:
		// The operator's choice of UEFI binary holds for HTTP boot too:
		// it is made because ipxe.efi's own drivers fail on some NICs,
		// which does not depend on how the binary was fetched.
		return c.bootURL + pathFirmware + efi
	case FirmwareHTTPARM64:
		return c.bootURL + pathFirmware + fileARM64
	case FirmwareIPXE:
		return c.bootURL + pathScript
	}
	return ""
}

// tftp reports whether f's boot file is fetched over TFTP.
func (f Firmware) tftp() bool {
	return f == FirmwareBIOS || f == FirmwareUEFI || f == FirmwareARM64
}
