package pxe

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// parseMAC accepts the usual spellings of a 48-bit MAC (iPXE's ${mac} is
// 52:54:00:12:34:56) and returns its canonical lower-case colon form, the
// form the inventory and tokens use.
func parseMAC(s string) (string, error) {
	if len(s) > 32 {
		return "", fmt.Errorf("not a MAC address")
	}
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("not a 48-bit MAC address")
	}
	return hw.String(), nil
}

// Hints are what iPXE says about the machine besides its MAC (SMBIOS UUID
// and serial, iPXE build architecture and platform), passed on so that the
// inventory can record them. Each is cleaned to at most maxHintLen printable
// ASCII characters; iPXE sends an empty value for what it does not know.
type Hints struct {
	UUID     string
	Serial   string
	Arch     string // ${buildarch}: i386, x86_64, arm64…
	Platform string // ${platform}: pcbios, efi
	IP       netip.Addr
}

const maxHintLen = 64

// hintsFrom reads the hints of a /ipxe request.
func hintsFrom(q url.Values, ip netip.Addr) Hints {
	return Hints{
		UUID:     cleanHint(q.Get("uuid")),
		Serial:   cleanHint(q.Get("serial")),
		Arch:     cleanHint(q.Get("arch")),
		Platform: cleanHint(q.Get("platform")),
		IP:       ip,
	}
}

// cleanHint keeps the printable ASCII of s, trimmed and bounded: a serial
// number is whatever the vendor burnt into SMBIOS.
func cleanHint(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxHintLen {
		// Trimmed again after the cut, so that a cut at a space leaves
		// none behind (found by FuzzHints).
		s = strings.TrimRight(s[:maxHintLen], " ")
	}
	return s
}

// clientIP is the request's peer address, without a port or a v4-in-v6 form.
func clientIP(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
