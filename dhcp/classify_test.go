package dhcp

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

func TestClassify(t *testing.T) {
	cfg := bootConfig{bootURL: "http://10.99.0.1:8080"}
	uuid := append([]byte{0}, 0x4c, 0x4c, 0x45, 0x44, 0, 0x59, 0x10, 0x57, 0x80, 0x30, 0xb4, 0xc0, 0x4f, 0x50, 0x32, 0x31)
	tests := map[string]struct {
		mods      []dhcpv4.Modifier
		efiBinary string
		want      Boot
		wantFile  string
	}{
		"plain client": {
			want: Boot{Firmware: FirmwareNone},
		},
		"BIOS": {
			mods:     []dhcpv4.Modifier{arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001")},
			want:     Boot{Firmware: FirmwareBIOS, HasArch: true, Arch: 0, VendorClass: "PXEClient:Arch:00000:UNDI:002001"},
			wantFile: "undionly.kpxe",
		},
		"UEFI x86-64 (7)": {
			mods:     []dhcpv4.Modifier{arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016")},
			want:     Boot{Firmware: FirmwareUEFI, HasArch: true, Arch: 7, VendorClass: "PXEClient:Arch:00007:UNDI:003016"},
			wantFile: "ipxe.efi",
		},
		"UEFI x86-64 (9, EFI BC)": {
			mods:     []dhcpv4.Modifier{arch(iana.EFI_BC)},
			want:     Boot{Firmware: FirmwareUEFI, HasArch: true, Arch: 9},
			wantFile: "ipxe.efi",
		},
		"UEFI x86-64 with snponly.efi chosen": {
			mods:      []dhcpv4.Modifier{arch(iana.EFI_X86_64)},
			efiBinary: "snponly.efi",
			want:      Boot{Firmware: FirmwareUEFI, HasArch: true, Arch: 7},
			wantFile:  "snponly.efi",
		},
		"arm64 UEFI": {
			mods:     []dhcpv4.Modifier{arch(iana.EFI_ARM64)},
			want:     Boot{Firmware: FirmwareARM64, HasArch: true, Arch: 11},
			wantFile: "ipxe-arm64.efi",
		},
		"UEFI HTTP boot (16)": {
			mods:     []dhcpv4.Modifier{arch(iana.EFI_X86_64_HTTP), vendor("HTTPClient:Arch:00016:UNDI:003001")},
			want:     Boot{Firmware: FirmwareHTTP, HasArch: true, Arch: 16, VendorClass: "HTTPClient:Arch:00016:UNDI:003001"},
			wantFile: "http://10.99.0.1:8080/firmware/ipxe.efi",
		},
		"UEFI HTTP boot by vendor class only": {
			mods:     []dhcpv4.Modifier{vendor("HTTPClient")},
			want:     Boot{Firmware: FirmwareHTTP, VendorClass: "HTTPClient"},
			wantFile: "http://10.99.0.1:8080/firmware/ipxe.efi",
		},
		"arm64 UEFI HTTP boot (19)": {
			mods:     []dhcpv4.Modifier{arch(iana.EFI_ARM64_HTTP), vendor("HTTPClient:Arch:00019")},
			want:     Boot{Firmware: FirmwareHTTPARM64, HasArch: true, Arch: 19, VendorClass: "HTTPClient:Arch:00019"},
			wantFile: "http://10.99.0.1:8080/firmware/ipxe-arm64.efi",
		},
		"iPXE (raw user class) wins over its PXE options": {
			mods:     []dhcpv4.Modifier{arch(iana.INTEL_X86PC), vendor("PXEClient:Arch:00000:UNDI:002001"), ipxeClass()},
			want:     Boot{Firmware: FirmwareIPXE, HasArch: true, Arch: 0, VendorClass: "PXEClient:Arch:00000:UNDI:002001", UserClass: "iPXE"},
			wantFile: "http://10.99.0.1:8080/boot.ipxe",
		},
		"iPXE (RFC 3004 user class)": {
			mods:     []dhcpv4.Modifier{arch(iana.EFI_X86_64), dhcpv4.WithUserClass("iPXE", true)},
			want:     Boot{Firmware: FirmwareIPXE, HasArch: true, Arch: 7, UserClass: "iPXE"},
			wantFile: "http://10.99.0.1:8080/boot.ipxe",
		},
		"other user class is not iPXE": {
			mods:     []dhcpv4.Modifier{arch(iana.INTEL_X86PC), dhcpv4.WithUserClass("gPXE", false)},
			want:     Boot{Firmware: FirmwareBIOS, HasArch: true, UserClass: "gPXE"},
			wantFile: "undionly.kpxe",
		},
		"unknown arch (EFI IA32)": {
			mods: []dhcpv4.Modifier{arch(iana.EFI_IA32), vendor("PXEClient:Arch:00006")},
			want: Boot{Firmware: FirmwareUnknown, HasArch: true, Arch: 6, VendorClass: "PXEClient:Arch:00006"},
		},
		"PXEClient without option 93": {
			mods: []dhcpv4.Modifier{vendor("PXEClient")},
			want: Boot{Firmware: FirmwareUnknown, VendorClass: "PXEClient"},
		},
		"machine UUID (option 97)": {
			mods:     []dhcpv4.Modifier{arch(iana.INTEL_X86PC), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, uuid)},
			want:     Boot{Firmware: FirmwareBIOS, HasArch: true, UUID: "4c4c4544-0059-1057-8030-b4c04f503231"},
			wantFile: "undionly.kpxe",
		},
		"malformed option 93 is no arch": {
			mods: []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7})},
			want: Boot{Firmware: FirmwareNone},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Classify(discover(t, "02:00:00:00:00:01", tc.mods...))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Classify (-want +got):\n%s", diff)
			}
			c := cfg
			c.efiBinary = tc.efiBinary
			if file := bootFile(got.Firmware, c); file != tc.wantFile {
				t.Errorf("bootFile = %q, want %q", file, tc.wantFile)
			}
		})
	}
}

func TestBootFileWithoutBootURL(t *testing.T) {
	// Without the HTTP server's URL, iPXE and HTTP boot get nothing
	// rather than a broken URL; TFTP clients still get their binary.
	for f, want := range map[Firmware]string{
		FirmwareIPXE:    "",
		FirmwareHTTP:    "",
		FirmwareBIOS:    "undionly.kpxe",
		FirmwareUnknown: "",
		FirmwareNone:    "",
	} {
		if got := bootFile(f, bootConfig{}); got != want {
			t.Errorf("bootFile(%s) = %q, want %q", f, got, want)
		}
	}
}

// TestBootFileIPXEScript: with the TFTP-served retry script configured,
// iPXE's answer names it rather than the HTTP /boot.ipxe, whose failed
// first fetch (a server restarting) iPXE never retries; every other
// firmware's file is unchanged, and the reply carries it whole.
func TestBootFileIPXEScript(t *testing.T) {
	cfg := bootConfig{bootURL: "http://10.99.0.1:8080", ipxeScript: "tftp://10.99.0.1/boot.ipxe"}
	for f, want := range map[Firmware]string{
		FirmwareIPXE:    "tftp://10.99.0.1/boot.ipxe",
		FirmwareBIOS:    "undionly.kpxe",
		FirmwareUEFI:    "ipxe.efi",
		FirmwareHTTP:    "http://10.99.0.1:8080/firmware/ipxe.efi",
		FirmwareUnknown: "",
	} {
		if got := bootFile(f, cfg); got != want {
			t.Errorf("bootFile(%s) = %q, want %q", f, got, want)
		}
	}
	// Without the HTTP URL the script still goes out: it names it itself.
	if got := bootFile(FirmwareIPXE, bootConfig{ipxeScript: cfg.ipxeScript}); got != cfg.ipxeScript {
		t.Errorf("bootFile(iPXE) without a boot URL = %q, want %q", got, cfg.ipxeScript)
	}
	req := discover(t, "02:00:00:00:00:01", arch(iana.EFI_X86_64), ipxeClass())
	rep := reply(req, answer{kind: dhcpv4.MessageTypeOffer, boot: Classify(req)}, serverIP, cfg)
	back, err := dhcpv4.FromBytes(rep.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := back.BootFileName; got != cfg.ipxeScript {
		t.Errorf("iPXE's boot file = %q, want %q", got, cfg.ipxeScript)
	}
	if got := back.ServerIPAddr; !got.Equal(serverIP.AsSlice()) {
		t.Errorf("siaddr = %v, want the server %v (the TFTP server)", got, serverIP)
	}
}
