package pxe

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/undercloud/undercloud/images"
)

// FuzzParseMAC: what parseMAC accepts is a canonical MAC that parses to
// itself, so the inventory and the tokens never see two spellings of one
// machine.
func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"52:54:00:12:34:56", "52-54-00-12-34-56", "5254.0012.3456", " 52:54:00:12:34:56 ",
		"52:54:00:12:34:56:78:9a", "AA:BB:CC:DD:EE:FF", "", "zz:zz:zz:zz:zz:zz", strings.Repeat("a", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mac, err := parseMAC(s)
		if err != nil {
			return
		}
		if len(mac) != 17 || strings.ToLower(mac) != mac {
			t.Fatalf("parseMAC(%q) = %q, not canonical", s, mac)
		}
		if again, err := parseMAC(mac); err != nil || again != mac {
			t.Fatalf("parseMAC(%q) = %q, which parses to %q, %v", s, mac, again, err)
		}
	})
}

// FuzzHints: whatever the query string of /ipxe, each hint is at most
// maxHintLen printable ASCII characters, trimmed, and cleaning it again
// changes nothing.
func FuzzHints(f *testing.F) {
	for _, s := range []string{"mac=52:54:00:12:34:56&uuid=4c4c4544-0042&serial=ABC123&arch=x86_64&platform=efi",
		"uuid=%00%01%7f%ff&serial=" + strings.Repeat("x", 100), "serial=+++%20a%20+", "arch=%E2%80%AE", ";;&&==", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // the server reads what parses, as r.URL.Query does
		h := hintsFrom(q, netip.MustParseAddr("10.99.0.10"))
		for _, v := range []string{h.UUID, h.Serial, h.Arch, h.Platform} {
			if len(v) > maxHintLen || strings.TrimSpace(v) != v || cleanHint(v) != v {
				t.Fatalf("hint %q from %q is not clean", v, raw)
			}
			for i := 0; i < len(v); i++ {
				if v[i] < ' ' || v[i] > '~' {
					t.Fatalf("hint %q from %q holds byte %#x", v, raw, v[i])
				}
			}
		}
	})
}

// FuzzCallbackBody: readCallbackBody refuses with a 4xx what it does not
// accept, and what it accepts is a body whose fields hold what the
// inventory may store (a sha256 digest, a host name) and that re-encodes
// to JSON that reads back the same.
func FuzzCallbackBody(f *testing.F) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, s := range []string{"", "  \n", `{}`, `{"hostname":"lab-w1"}`, `{"digest":"` + digest + `","hostname":"n1"}`,
		`{"files":{"/etc/motd":"` + digest + `"}}`, `{"files":{"":"x"}}`, `{"hostname":"a b"}`, `{"digest":"md5:00"}`,
		`[1,2]`, `{"hostname":` + strings.Repeat("[", 100), strings.Repeat(" ", maxBodyBytes+1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/booted", bytes.NewReader(data))
		b, status, err := readCallbackBody(w, r)
		if err != nil {
			if status < 400 || status > 499 {
				t.Fatalf("refused %q with status %d", data, status)
			}
			return
		}
		if status != 0 {
			t.Fatalf("accepted %q with status %d", data, status)
		}
		if len(data) > maxBodyBytes {
			t.Fatalf("accepted a body of %d bytes", len(data))
		}
		if b.Digest != "" && !images.IsDigest(b.Digest) {
			t.Fatalf("accepted digest %q", b.Digest)
		}
		if cleanHostname(b.Hostname) != b.Hostname || len(b.Hostname) > 253 {
			t.Fatalf("accepted hostname %q", b.Hostname)
		}
		for p, sum := range b.Files {
			if p == "" || !images.IsDigest(sum) {
				t.Fatalf("accepted file %q: %q", p, sum)
			}
		}
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		again, status, err := readCallbackBody(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/booted", bytes.NewReader(enc)))
		if err != nil || status != 0 {
			t.Fatalf("re-encoded body %s refused: %d %v", enc, status, err)
		}
		if len(b.Files) == 0 {
			b.Files, again.Files = nil, nil // {} and absent read the same
		}
		if !reflect.DeepEqual(b, again) {
			t.Fatalf("body %q re-encodes as %s, which reads %+v, not %+v", data, enc, again, b)
		}
	})
}

// FuzzFirmwareOpen: a TFTP or /firmware name opens a file of the allow-list
// in the firmware directory, exactly as named, or nothing: never the secret
// next to the directory, never a file reached through "..", a separator,
// an escape or a case change.
func FuzzFirmwareOpen(f *testing.F) {
	root := f.TempDir()
	dir := filepath.Join(root, "ipxe")
	if err := os.Mkdir(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	files := map[string]string{"undionly.kpxe": "bios", "ipxe.efi": "efi", "not-listed.efi": "hidden"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "secret"), []byte("secret"), 0o600); err != nil {
		f.Fatal(err)
	}
	fw := Firmware{Dir: dir}
	for _, s := range []string{"undionly.kpxe", "ipxe.efi", "not-listed.efi", "../secret", "undionly.kpxe/../../secret",
		"/etc/passwd", `..\secret`, "%2e%2e%2fsecret", "UNDIONLY.KPXE", "undionly.kpxe\x00", "snponly.efi", ".", "", "ipxe.efi "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		file, name, err := fw.Open(raw)
		if err != nil {
			if file != nil {
				t.Fatalf("Open(%q) failed with a file", raw)
			}
			if !errors.Is(err, ErrBadName) && !errors.Is(err, ErrNotAllowed) && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Open(%q): unexpected error %v", raw, err)
			}
			return
		}
		defer file.Close()
		if name != raw || (name != "undionly.kpxe" && name != "ipxe.efi") {
			t.Fatalf("Open(%q) opened %q", raw, name)
		}
		body, _ := io.ReadAll(file)
		if string(body) != files[name] || filepath.Dir(file.Name()) != dir {
			t.Fatalf("Open(%q) read %q from %s", raw, body, file.Name())
		}
	})
}

// FuzzTokenCheck: only the token minted for a machine, version and boot is
// accepted, only for exactly that machine and version, and only in the
// form Mint wrote it; anything else is ErrTokenInvalid (ErrTokenExpired is
// for an authentic token, and none here is past its time).
func FuzzTokenCheck(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tk := &Tokens{Key: []byte("0123456789abcdef0123"), Now: func() time.Time { return now }}
	const mac, version, boot = "52:54:00:12:34:56", "0123456789abcdef0123456789abcdef01234567", "feedc0de12345678"
	good, err := tk.Mint(mac, version, boot)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, mac, version)
	f.Add(good, "52:54:00:12:34:57", version)
	f.Add(good, mac, "v2")
	f.Add(good[:len(good)-1], mac, version)
	f.Add(good+"A", mac, version)
	f.Add(good[:len(good)-1]+string(good[len(good)-1]+1), mac, version) // other spare bits
	f.Add(good[:10]+"\n"+good[10:], mac, version)                       // a line break, skipped by the decoder
	f.Add(strings.ToUpper(good), mac, version)
	f.Add("", mac, version)
	f.Add("AQ", "", "")
	f.Add(strings.Repeat("A", 300), mac, version)
	f.Fuzz(func(t *testing.T, token, m, v string) {
		id, err := tk.Check(token, m, v)
		if err != nil {
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("Check(%q, %q, %q) = %v, want ErrTokenInvalid", token, m, v, err)
			}
			return
		}
		if token != good || m != mac || v != version || id != boot {
			t.Fatalf("Check accepted %q for %q at %q (boot %q); only %q for %q at %q is authentic", token, m, v, id, good, mac, version)
		}
	})
}
