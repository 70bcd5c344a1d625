package images

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

const gateSite = `network:
  subnet: 10.1.0.0/24
  gateway: 10.1.0.1
  dns: [10.1.0.1]
  dhcp:
    range: {start: 10.1.0.100, end: 10.1.0.199}
image: node
cluster: {name: c1, api_vip: 10.1.0.10}
machines:
  - {name: m1, mac: "52:54:00:00:00:01", role: master, ip: 10.1.0.11}
`

// secretsLayout is an artifact root with a real kernel, next to a secrets
// file outside it, and links inside the root that lead out.
type secretsLayout struct {
	root, secrets, kernel string
	secretsDigest         string
	kernelDigest          string
}

func newSecretsLayout(t *testing.T) secretsLayout {
	t.Helper()
	base := t.TempDir()
	l := secretsLayout{root: filepath.Join(base, "artifacts"), secrets: filepath.Join(base, "etc", "secrets.yaml")}
	for _, d := range []string{l.root, filepath.Dir(l.secrets)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte("api_tokens:\n  - {name: alice, role: operator, token: hunter2hunter2hunter2}\n")
	kernel := []byte("a kernel")
	l.secretsDigest, l.kernelDigest = testkit.SHA256Hex(secret), testkit.SHA256Hex(kernel)
	l.kernel = filepath.Join(l.root, "vmlinuz")
	for p, b := range map[string][]byte{l.secrets: secret, l.kernel: kernel} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"secrets.yaml": l.secrets,                  // a file link out
		"etc":          filepath.Dir(l.secrets),    // a directory link out
		"relative":     "../etc/secrets.yaml",      // a relative link out
		"inside":       "vmlinuz",                  // a link that stays in
		"chain":        filepath.Join(l.root, "x"), // inside, to a link out
		"x":            l.secrets,
	} {
		if err := os.Symlink(target, filepath.Join(l.root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// escapes are catalog entries that point at the secrets file.
func (l secretsLayout) escapes() map[string]sites.Artifact {
	return map[string]sites.Artifact{
		"absolute path":              {Path: l.secrets},
		"file URL":                   {URL: "file://" + l.secrets},
		"absolute path through ..":   {Path: l.root + "/../etc/secrets.yaml"},
		"relative ../ path":          {Path: "../etc/secrets.yaml"},
		"symlink to the file":        {Path: "secrets.yaml"},
		"absolute symlink":           {Path: filepath.Join(l.root, "secrets.yaml")},
		"file URL to a symlink":      {URL: "file://" + filepath.Join(l.root, "secrets.yaml")},
		"symlinked directory":        {Path: "etc/secrets.yaml"},
		"relative symlink":           {Path: "relative"},
		"chain of symlinks":          {Path: "chain"},
		"file URL with localhost":    {URL: "file://localhost" + l.secrets},
		"the root itself":            {Path: "."},
		"absolute path without root": {Path: l.kernel}, // checked with no root below
	}
}

// The regression test of issue 15's first finding: a site version whose
// artifact points at a file outside the artifact root is rejected at the
// gate, with a problem naming the artifact and its source, whether its
// digest is wrong (the error once told the file's real digest) or right
// (the file was then stored and served by digest). The error never shows
// the file's digest, and nothing is stored.
func TestGateRefusesArtifactsOutsideRoot(t *testing.T) {
	l := newSecretsLayout(t)
	wrong := testkit.SHA256Hex([]byte("a guess"))
	for name, a := range l.escapes() {
		for _, digest := range []string{wrong, l.secretsDigest} {
			for _, mode := range []string{"import", "verify"} {
				t.Run(name+"/"+mode+"/"+digest[:4], func(t *testing.T) {
					s := &Store{ArtifactRoot: l.root}
					if mode == "import" {
						s.Dir = t.TempDir()
					}
					if name == "absolute path without root" {
						s.ArtifactRoot = ""
					}
					a := a
					a.SHA256 = digest
					ps := gate(t, s, a)
					var found *sites.Problem
					for i := range ps {
						// The form check catches ../ (artifacts.kernel.path);
						// the store the rest (artifacts.kernel).
						if ps[i].File == "images/node.yaml" && strings.HasPrefix(ps[i].Field, "artifacts.kernel") {
							found = &ps[i]
						}
						if strings.Contains(ps[i].String(), l.secretsDigest) && digest != l.secretsDigest {
							t.Errorf("problem shows the file's digest: %s", ps[i])
						}
						if strings.Contains(ps[i].String(), "hunter2") {
							t.Errorf("problem shows the file's content: %s", ps[i])
						}
					}
					if found == nil {
						t.Fatalf("no problem on artifacts.kernel; got %v", ps)
					}
					if !strings.Contains(found.String(), a.Source()) {
						t.Errorf("problem %q does not name the source %s", found, a.Source())
					}
					if s.Dir != "" {
						if s.Has(l.secretsDigest) {
							t.Error("the secrets file is in the store")
						}
						for _, f := range storeFiles(t, s.Dir) {
							if f != "sha256/"+l.kernelDigest { // the initrd
								t.Errorf("store holds %s", f)
							}
						}
					}
				})
			}
		}
	}
}

// gate runs the validation gate on a one-site repo whose image's kernel is
// a (the initrd is the root's real kernel).
func gate(t *testing.T, s *Store, a sites.Artifact) sites.Problems {
	t.Helper()
	line := func(name string, a sites.Artifact) string {
		if a.URL != "" {
			return "  " + name + ": {url: \"" + a.URL + "\", sha256: " + a.SHA256 + "}\n"
		}
		return "  " + name + ": {path: \"" + a.Path + "\", sha256: " + a.SHA256 + "}\n"
	}
	image := "ignition: 3.3.0\nmode: live\nartifacts:\n" + line("kernel", a) +
		line("initrd", sites.Artifact{Path: "vmlinuz", SHA256: testkit.SHA256Hex([]byte("a kernel"))})
	cfg, ps := sites.Load(sites.Files{"images/node.yaml": []byte(image), "sites/s1/site.yaml": []byte(gateSite)})
	if len(ps) > 0 {
		return ps
	}
	return sites.Gate{Artifacts: s}.Check(context.Background(), cfg, []string{"s1"}, sites.Version{Commit: "abc"}, nil)
}

// Sources inside the root are read, through links that stay inside and
// through a root that is itself reached by a link.
func TestStoreReadsInsideRoot(t *testing.T) {
	l := newSecretsLayout(t)
	linkedRoot := filepath.Join(t.TempDir(), "root-link")
	if err := os.Symlink(l.root, linkedRoot); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		root string
		a    sites.Artifact
	}{
		"relative":               {l.root, sites.Artifact{Path: "vmlinuz"}},
		"relative with ./":       {l.root, sites.Artifact{Path: "./vmlinuz"}},
		"absolute":               {l.root, sites.Artifact{Path: l.kernel}},
		"file URL":               {l.root, sites.Artifact{URL: "file://" + l.kernel}},
		"link inside":            {l.root, sites.Artifact{Path: "inside"}},
		"linked root, relative":  {linkedRoot, sites.Artifact{Path: "vmlinuz"}},
		"linked root, absolute":  {linkedRoot, sites.Artifact{Path: filepath.Join(linkedRoot, "vmlinuz")}},
		"linked root, real path": {linkedRoot, sites.Artifact{Path: l.kernel}},
	} {
		t.Run(name, func(t *testing.T) {
			tc.a.SHA256 = l.kernelDigest
			s := &Store{Dir: t.TempDir(), ArtifactRoot: tc.root}
			if ps := gate(t, s, tc.a); len(ps) > 0 {
				t.Fatalf("gate: %v", ps)
			}
			if !s.Has(l.kernelDigest) {
				t.Error("not stored")
			}
			if err := (&Store{ArtifactRoot: tc.root}).Verify(context.Background(), tc.a); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// An artifact the store already has is still refused from a forbidden
// source: a catalog naming /etc/... never passes, even when the digest is
// one the store holds.
func TestStoreRefusesForbiddenSourceOfStoredDigest(t *testing.T) {
	l := newSecretsLayout(t)
	s := &Store{Dir: t.TempDir(), ArtifactRoot: l.root}
	if err := s.Import(context.Background(), sites.Artifact{Path: "vmlinuz", SHA256: l.kernelDigest}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []sites.Artifact{
		{Path: "/etc/hostname", SHA256: l.kernelDigest},
		{Path: "../vmlinuz", SHA256: l.kernelDigest},
		{URL: "ftp://x/vmlinuz", SHA256: l.kernelDigest},
	} {
		if err := s.Import(context.Background(), a); err == nil {
			t.Errorf("Import(%s) of a stored digest succeeded", a.Source())
		}
	}
}

// Only regular files are read: a FIFO would block the gate for ever, a
// directory is no artifact.
func TestStoreRefusesNonRegular(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mkfifo(filepath.Join(root, "fifo")); err != nil {
		t.Skip("mkfifo:", err)
	}
	for _, p := range []string{"dir", "fifo"} {
		s := &Store{Dir: t.TempDir(), ArtifactRoot: root}
		err := s.Import(context.Background(), sites.Artifact{Path: p, SHA256: testkit.SHA256Hex(nil)})
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Import(%s) = %v, want not a regular file", p, err)
		}
	}
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o600) }
