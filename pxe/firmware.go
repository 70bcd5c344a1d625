package pxe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultFirmwareDir is where Debian's ipxe package installs its binaries.
const DefaultFirmwareDir = "/usr/lib/ipxe"

// DefaultFirmwareNames are the iPXE binaries served when Firmware.Names is
// empty: what the DHCP answers of docs/boot-flow.md name (undionly.kpxe for
// BIOS, ipxe.efi or snponly.efi for x86-64 UEFI, ipxe-arm64.efi for arm64),
// plus Debian's other network-bootable builds. A listed file that is absent
// from the directory is simply not found.
func DefaultFirmwareNames() []string {
	return []string{"undionly.kpxe", "undionly.kkpxe", "ipxe.pxe", "ipxe.efi", "snponly.efi", "ipxe-arm64.efi"}
}

// Errors of FirmwareName.
var (
	// ErrBadName is a requested name that is not a plain file name: empty,
	// too long, with a path separator, "..", an escape or a control byte.
	ErrBadName = errors.New("not a plain file name")
	// ErrNotAllowed is a plain name that is not on the allow-list.
	ErrNotAllowed = errors.New("not an allowed file")
)

// maxNameLen bounds a requested name; no iPXE binary name comes close.
const maxNameLen = 64

// FirmwareName decides whether raw, a file name exactly as a client sent it
// (TFTP hands it over uncleaned), names a file of the allow-list, and returns
// the name to open. Only an exact match of a plain name passes: no cleaning,
// no case folding, no decoding, so that "undionly.kpxe/../../x", "/etc/passwd",
// "..\\x" or "%2e%2e" can never reach the file system.
func FirmwareName(raw string, allow []string) (string, error) {
	if err := plainName(raw); err != nil {
		return "", err
	}
	if !slices.Contains(allow, raw) {
		return "", ErrNotAllowed
	}
	return raw, nil
}

// plainName accepts a single path element of printable ASCII without any
// character that a file system, a URL decoder or a Windows-minded client
// could read as structure.
func plainName(s string) error {
	if s == "" || len(s) > maxNameLen {
		return ErrBadName
	}
	if s == "." || strings.Contains(s, "..") {
		return ErrBadName
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`/\%:*?"<>|`, c) >= 0 {
			return ErrBadName
		}
	}
	return nil
}

// Firmware is the set of iPXE binaries served over TFTP and over HTTP
// (/firmware/<name>, for UEFI HTTP boot). The zero value serves
// DefaultFirmwareNames from DefaultFirmwareDir.
type Firmware struct {
	Dir   string   // directory holding the binaries; empty means DefaultFirmwareDir
	Names []string // allow-list of plain file names; empty means DefaultFirmwareNames
}

func (f Firmware) dir() string {
	if f.Dir == "" {
		return DefaultFirmwareDir
	}
	return f.Dir
}

func (f Firmware) names() []string {
	if len(f.Names) == 0 {
		return DefaultFirmwareNames()
	}
	return f.Names
}

// Check reports a misconfigured allow-list (a name that is not a plain file
// name) or a directory that cannot be read, so that the server fails at
// start-up rather than at the first boot.
func (f Firmware) Check() error {
	for _, n := range f.names() {
		if plainName(n) != nil {
			return fmt.Errorf("firmware allow-list: %q is not a plain file name", n)
		}
	}
	st, err := os.Stat(f.dir())
	if err != nil {
		return fmt.Errorf("firmware directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("firmware directory %s: not a directory", f.dir())
	}
	return nil
}

// Open decides on raw with FirmwareName and opens the file. It follows
// symbolic links (Debian's ipxe.efi links to /boot/ipxe.efi), since only the
// directory's owner can create them, and refuses anything but a regular file.
// A listed but absent file is an error wrapping fs.ErrNotExist.
func (f Firmware) Open(raw string) (*os.File, string, error) {
	name, err := FirmwareName(raw, f.names())
	if err != nil {
		return nil, "", err
	}
	file, err := os.Open(filepath.Join(f.dir(), name))
	if err != nil {
		return nil, "", fmt.Errorf("open firmware %s: %w", name, err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, "", fmt.Errorf("stat firmware %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		file.Close()
		return nil, "", fmt.Errorf("firmware %s: not a regular file", name)
	}
	return file, name, nil
}
