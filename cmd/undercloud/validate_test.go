package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/pxe"
)

// exampleRepo builds the example site repo with placeholder artifacts.
func exampleRepo(t *testing.T) *siterepo.Repo {
	t.Helper()
	ex, err := siterepo.Build(filepath.Join(t.TempDir(), "repo"), siterepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// branch commits edits (file -> old -> new replacements) on a new branch from main.
func branch(t *testing.T, ex *siterepo.Repo, name string, edits map[string][2]string) {
	t.Helper()
	if err := ex.Checkout("main", false); err != nil {
		t.Fatal(err)
	}
	if err := ex.Checkout(name, true); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for file, e := range edits {
		cur, err := ex.File(file)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		next := strings.Replace(string(cur), e[0], e[1], 1)
		if next == string(cur) && e[0] != "" {
			t.Fatalf("edit of %s changed nothing: %q not found", file, e[0])
		}
		files[file] = []byte(next)
	}
	if _, err := ex.Commit("test: "+name, files, ""); err != nil {
		t.Fatal(err)
	}
	if err := ex.Checkout("main", false); err != nil {
		t.Fatal(err)
	}
}

func runCLI(args ...string) (stdout string, code int) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	var ex exitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ex):
		return out.String() + errb.String() + ex.msg, ex.code
	default:
		return out.String() + errb.String() + err.Error(), 1
	}
}

func TestValidateAcceptsExampleRepo(t *testing.T) {
	ex := exampleRepo(t)
	out, code := runCLI("validate", "--repo", ex.Dir, "--artifact-root", ex.ArtifactRoot)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"ok lab at v1", "ok second at v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// The README's CI example: a site repo validates what it has checked out.
func TestValidateHEAD(t *testing.T) {
	ex := exampleRepo(t)
	for _, ref := range []string{"HEAD", "HEAD~1"} {
		out, code := runCLI("validate", "--repo", ex.Dir, "--artifact-root", ex.ArtifactRoot, "--ref", ref)
		if code != 0 || !strings.Contains(out, "ok lab at") {
			t.Errorf("validate --ref %s: exit %d:\n%s", ref, code, out)
		}
	}
}

func TestValidateRejectsWithPreciseMessages(t *testing.T) {
	ex := exampleRepo(t)
	const lab, second = "sites/lab/site.yaml", "sites/second/site.yaml"
	tests := map[string]struct {
		ref   string
		edits map[string][2]string
		want  string
	}{
		"duplicate MAC across two sites": {
			edits: map[string][2]string{second: {"mac: 52:54:00:98:00:21", "mac: 52:54:00:99:00:11"}},
			want:  "sites/second/site.yaml:machines[1].mac: MAC 52:54:00:99:00:11 is already used by lab/lab-m1 (sites/lab/site.yaml) (line 27)",
		},
		"IP inside the dynamic range": {
			edits: map[string][2]string{lab: {"ip: 10.99.0.22", "ip: 10.99.0.150"}},
			want:  "sites/lab/site.yaml:machines[2].ip: 10.99.0.150 is inside the dynamic range 10.99.0.100-10.99.0.199 (network.dhcp.range) (line 55)",
		},
		"two masters": {
			ref:  "v3-broken",
			want: "sites/lab/site.yaml:machines: 2 masters: etcd needs an odd number of members for a quorum (1, 3 or 5) (line 39)",
		},
		"unknown image": {
			edits: map[string][2]string{second: {"image: testnode", "image: fcos-41"}},
			want:  `sites/second/site.yaml:image: unknown image "fcos-41" (the catalog has: testnode, testnode-install) (line 10)`,
		},
		"Butane snippet with an error": {
			edits: map[string][2]string{"sites/lab/snippets/common.bu": {"path: /etc/motd", "path: etc/motd"}},
			want:  "sites/lab/snippets/common.bu:storage.files[0].path: path not absolute (line 7)",
		},
		"wrong artifact digest": {
			edits: map[string][2]string{"images/testnode.yaml": {"sha256: ", "sha256: 0"}},
			want:  "images/testnode.yaml:artifacts.kernel.sha256:",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ref := tc.ref
			if ref == "" {
				ref = "case-" + strings.ReplaceAll(name, " ", "-")
				branch(t, ex, ref, tc.edits)
			}
			out, code := runCLI("validate", "--repo", ex.Dir, "--artifact-root", ex.ArtifactRoot, "--ref", ref)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for _, l := range lines {
				if strings.HasPrefix(l, tc.want) {
					t.Logf("%s", l)
					return
				}
			}
			t.Fatalf("no line starting with\n  %s\nin\n%s", tc.want, out)
		})
	}
}

// A wrong digest (well-formed, but not the file's) is caught by hashing the
// artifact; the message names the expected digest only, never the file's.
func TestValidateWrongDigestOfRealFile(t *testing.T) {
	ex := exampleRepo(t)
	cat, err := ex.File("images/testnode.yaml")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(cat), "sha256: ") + len("sha256: ")
	real := string(cat[i : i+64])
	wrong := strings.Repeat("ab", 32)
	branch(t, ex, "bad-digest", map[string][2]string{"images/testnode.yaml": {real, wrong}})
	out, code := runCLI("validate", "--repo", ex.Dir, "--artifact-root", ex.ArtifactRoot, "--ref", "bad-digest")
	want := "images/testnode.yaml:artifacts.kernel: verify sha256:" + wrong + " of vmlinuz: digest mismatch: the "
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want 1 and\n  %s\ngot\n%s", code, want, out)
	}
	if strings.Contains(out, real) {
		t.Errorf("the output shows the file's digest:\n%s", out)
	}
}

// Local artifacts are read from the artifact root only: without one, and
// for a path outside it, validate fails naming the artifact.
func TestValidateConfinesArtifacts(t *testing.T) {
	ex := exampleRepo(t)
	outside := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(outside, []byte("token: hunter2hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	branch(t, ex, "outside", map[string][2]string{"images/testnode.yaml": {"path: vmlinuz", "path: " + outside}})
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no artifact root": {[]string{"--ref", "v1"}, "images/testnode.yaml:artifacts.kernel: verify sha256:"},
		"outside the root": {[]string{"--ref", "outside", "--artifact-root", ex.ArtifactRoot}, "of " + outside + ": outside the artifact root"},
	} {
		t.Run(name, func(t *testing.T) {
			out, code := runCLI(append([]string{"validate", "--repo", ex.Dir}, tc.args...)...)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 1 and %q in\n%s", code, tc.want, out)
			}
		})
	}
}

// TestRenderPassesIgnitionValidate runs exactly what the site repo's CI would:
// undercloud render … | ignition-validate - for every machine of the lab site,
// with the built binary and Ignition's own validator (Debian package ignition).
func TestRenderPassesIgnitionValidate(t *testing.T) {
	validator, err := exec.LookPath("ignition-validate")
	if err != nil {
		t.Fatalf("ignition-validate not found (Debian package ignition): %v", err)
	}
	bin := undercloudBinary(t)
	ex := exampleRepo(t)
	for _, m := range []string{"lab-m1", "lab-w1", "lab-w2"} {
		for _, boot := range []string{"false", "true"} {
			cmd := exec.Command("bash", "-c", `set -o pipefail; "$0" render --repo "$1" --artifact-root "$5" --site lab --machine "$2" --bootstrapped="$3" | "$4" -`,
				bin, ex.Dir, m, boot, validator, ex.ArtifactRoot)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("render %s (bootstrapped=%s) | ignition-validate -: %v\n%s", m, boot, err, out)
			}
		}
	}
	// And the validator is not a rubber stamp: a broken config fails it.
	cmd := exec.Command(validator, "-")
	cmd.Stdin = strings.NewReader(`{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"relative/path"}]}}`)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("ignition-validate accepted a relative path:\n%s", out)
	}
}

// undercloudBinary returns the binary under test: UNDERCLOUD_BIN (set by
// make test), else one built from this tree.
func undercloudBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("UNDERCLOUD_BIN"); b != "" {
		return b
	}
	b := filepath.Join(t.TempDir(), "undercloud")
	if out, err := exec.Command("go", "build", "-o", b, ".").CombinedOutput(); err != nil {
		t.Fatalf("build undercloud: %v\n%s", err, out)
	}
	return b
}

// --site checks only that site (against the others for conflicts): a broken
// second site does not fail the lab's check, but it fails its own.
func TestValidateOneSite(t *testing.T) {
	ex := exampleRepo(t)
	branch(t, ex, "second-broken", map[string][2]string{"sites/second/site.yaml": {"image: testnode", "image: nope"}})
	if out, code := runCLI("validate", "--repo", ex.Dir, "--artifact-root", ex.ArtifactRoot, "--ref", "second-broken", "--site", "lab"); code != 0 || !strings.Contains(out, "ok lab at") || strings.Contains(out, "second") {
		t.Fatalf("--site lab: exit %d:\n%s", code, out)
	}
	if out, code := runCLI("validate", "--repo", ex.Dir, "--artifact-root", ex.ArtifactRoot, "--ref", "second-broken", "--site", "second"); code != 1 || !strings.Contains(out, `unknown image "nope"`) {
		t.Fatalf("--site second: exit %d:\n%s", code, out)
	}
	if out, code := runCLI("validate", "--repo", ex.Dir, "--artifact-root", ex.ArtifactRoot, "--site", "atlantis"); code != 1 || !strings.Contains(out, `site "atlantis" not found`) {
		t.Fatalf("--site atlantis: exit %d:\n%s", code, out)
	}
}

// render shows the config as served: the reporter, its units and the
// per-boot file, with placeholders for the boot's credentials.
func TestRenderShowsServedConfig(t *testing.T) {
	ex := exampleRepo(t)
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"render", "--repo", ex.Dir, "--artifact-root", ex.ArtifactRoot,
		"--site", "lab", "--machine", "lab-m1", "--base-url", "http://10.99.0.1:8080"}, &out, &errs)
	if err != nil {
		t.Fatalf("render: %v\n%s", err, errs.String())
	}
	cfg := out.String()
	for _, want := range []string{ignition.BootedUnit, ignition.HeartbeatUnit, ignition.HeartbeatTimer, "etcd-member.service",
		`"path": "` + ignition.ReportEnvPath + `"`, `"path": "` + ignition.ReporterPath + `"`,
		"http://10.99.0.1:8080/booted%3Fmac=", url.PathEscape(pxe.PlaceholderToken), url.PathEscape(pxe.PlaceholderHeartbeat)} {
		if !strings.Contains(cfg, want) {
			t.Errorf("render output lacks %s", want)
		}
	}
}
