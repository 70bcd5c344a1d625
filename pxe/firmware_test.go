package pxe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFirmwareName(t *testing.T) {
	allow := DefaultFirmwareNames()
	tests := map[string]struct {
		raw     string
		want    string
		wantErr error
	}{
		"bios binary":           {raw: "undionly.kpxe", want: "undionly.kpxe"},
		"uefi binary":           {raw: "ipxe.efi", want: "ipxe.efi"},
		"snp binary":            {raw: "snponly.efi", want: "snponly.efi"},
		"arm64 binary":          {raw: "ipxe-arm64.efi", want: "ipxe-arm64.efi"},
		"parent":                {raw: "../x", wantErr: ErrBadName},
		"bare parent":           {raw: "..", wantErr: ErrBadName},
		"dot":                   {raw: ".", wantErr: ErrBadName},
		"absolute":              {raw: "/etc/passwd", wantErr: ErrBadName},
		"absolute allowed name": {raw: "/undionly.kpxe", wantErr: ErrBadName},
		"through allowed name":  {raw: "undionly.kpxe/../../x", wantErr: ErrBadName},
		"subdirectory":          {raw: "qemu/efi-e1000.rom", wantErr: ErrBadName},
		"unlisted":              {raw: "pxelinux.0", wantErr: ErrNotAllowed},
		"unlisted in dir":       {raw: "ipxe.lkrn", wantErr: ErrNotAllowed},
		"case folded":           {raw: "UNDIONLY.KPXE", wantErr: ErrNotAllowed},
		"empty":                 {raw: "", wantErr: ErrBadName},
		"NUL suffix":            {raw: "undionly.kpxe\x00.txt", wantErr: ErrBadName},
		"NUL only":              {raw: "\x00", wantErr: ErrBadName},
		"newline":               {raw: "ipxe.efi\n", wantErr: ErrBadName},
		"trailing space":        {raw: "ipxe.efi ", wantErr: ErrBadName},
		"backslash parent":      {raw: `..\x`, wantErr: ErrBadName},
		"backslash path":        {raw: `ipxe\ipxe.efi`, wantErr: ErrBadName},
		"windows drive":         {raw: `C:ipxe.efi`, wantErr: ErrBadName},
		"encoded parent":        {raw: "%2e%2e%2fetc%2fpasswd", wantErr: ErrBadName},
		"encoded dot":           {raw: "undionly%2ekpxe", wantErr: ErrBadName},
		"double encoded":        {raw: "%252e%252e/x", wantErr: ErrBadName},
		"unicode lookalike":     {raw: "undionly\u2024kpxe", wantErr: ErrBadName},
		"overlong utf-8 slash":  {raw: "..\xc0\xafetc", wantErr: ErrBadName},
		"too long":              {raw: strings.Repeat("a", 200) + ".efi", wantErr: ErrBadName},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := FirmwareName(tc.raw, allow)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("FirmwareName(%q) error = %v, want %v", tc.raw, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("FirmwareName(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

// A misconfigured allow-list cannot open a way out of the directory: the raw
// name is checked before the list is.
func TestFirmwareNameBadAllowList(t *testing.T) {
	if _, err := FirmwareName("../etc/passwd", []string{"../etc/passwd"}); !errors.Is(err, ErrBadName) {
		t.Fatalf("error = %v, want ErrBadName", err)
	}
	if err := (Firmware{Dir: t.TempDir(), Names: []string{"../etc/passwd"}}).Check(); err == nil {
		t.Fatal("Check accepted a path in the allow-list")
	}
}

func TestFirmwareOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "real.efi"), []byte("real"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "real.efi"), filepath.Join(dir, "link.efi")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.efi"), 0o755); err != nil {
		t.Fatal(err)
	}
	fw := Firmware{Dir: dir, Names: []string{"real.efi", "link.efi", "dir.efi", "absent.efi"}}
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"real.efi", "link.efi"} {
		f, got, err := fw.Open(name)
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		f.Close()
		if got != name {
			t.Errorf("Open(%q) name = %q", name, got)
		}
	}
	if _, _, err := fw.Open("dir.efi"); err == nil {
		t.Error("Open of a directory succeeded")
	}
	if _, _, err := fw.Open("absent.efi"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of an absent listed file: %v, want fs.ErrNotExist", err)
	}
	if _, _, err := fw.Open("other.efi"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Open of an unlisted file: %v, want ErrNotAllowed", err)
	}
	if err := (Firmware{Dir: filepath.Join(dir, "nope")}).Check(); err == nil {
		t.Error("Check accepted a missing directory")
	}
}
