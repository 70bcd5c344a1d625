package ignition

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Debian's package ignition ships the real Ignition 2.14: its validator
// and, inside its dracut module, the client itself. 2.14 speaks spec <= 3.3,
// so these tests render 3.3.0.
const (
	validatorPath = "/usr/bin/ignition-validate"
	clientPath    = "/usr/lib/dracut/modules.d/30ignition/ignition"
)

func needTool(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: install the Debian package ignition (apt-get install ignition): %v", path, err)
	}
}

// realInputs are configs with everything in them: both roles, before and
// after bootstrap, snippets of both kinds, a booted callback.
func realInputs(t *testing.T) map[string]Input {
	files := repo("3.3.0", map[string]string{
		snippetDir + "common.bu":  "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contents:\n        inline: hello\n",
		snippetDir + "worker.ign": `{"ignition": {"version": "3.1.0"}, "storage": {"directories": [{"path": "/var/lib/worker", "mode": 493}]}}`,
	})
	ins := map[string]Input{}
	for _, c := range []struct {
		name, machine string
		bootstrapped  bool
	}{{"master-new", "m1", false}, {"master-existing", "m3", true}, {"worker", "w1", false}, {"worker-relay", "w2", true}} {
		ins[c.name] = input(t, files, c.machine, c.bootstrapped)
	}
	return ins
}

// realPerBoot are per-boot values as a server mints them.
func realPerBoot(in Input) PerBoot {
	q := "?mac=" + string(in.Machine.MAC) + "&version=v7&token="
	return PerBoot{BootID: "0123456789abcdef", BootedURL: "http://10.99.0.1:8080/booted" + q + "AQAAAABp-_8x",
		HeartbeatURL: "http://10.99.0.1:8080/heartbeat" + q + "AhAwMTIzNDU2Nzg5YWJjZGVm"}
}

func validate(t *testing.T, config []byte) (string, error) {
	t.Helper()
	cmd := exec.Command(validatorPath, "-")
	cmd.Stdin = bytes.NewReader(config)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestRealValidator(t *testing.T) {
	needTool(t, validatorPath)
	// The validator must be able to say no, or this test proves nothing.
	if out, err := validate(t, []byte(`{"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "relative"}]}}`)); err == nil {
		t.Fatalf("%s accepted a relative path: %s", validatorPath, out)
	}
	for name, in := range realInputs(t) {
		t.Run(name, func(t *testing.T) {
			config, err := Served(in, realPerBoot(in))
			if err != nil {
				t.Fatal(err)
			}
			if out, err := validate(t, config); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("%s - : %v\n%s", validatorPath, err, out)
			}
		})
	}
}

// TestRealClient runs the real Ignition client's fetch and files stages on
// a rendered config into a scratch root, and reads back what it wrote.
func TestRealClient(t *testing.T) {
	needTool(t, clientPath)
	if os.Geteuid() != 0 {
		t.Fatal("needs root: Ignition writes core's SSH keys as core's uid")
	}
	in := realInputs(t)["master-new"]
	config, err := Served(in, realPerBoot(in))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// core (uid 1000) writes its own keys: it must be able to reach its home.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root, run, bin := filepath.Join(dir, "root"), filepath.Join(dir, "run"), filepath.Join(dir, "bin")
	// A root as an image provides it: the core user exists (else Ignition
	// runs useradd), and an SELinux config, which Debian's build requires.
	seed := map[string]string{
		"etc/passwd":         "root:x:0:0:root:/root:/bin/sh\ncore:x:1000:1000:core:/home/core:/bin/sh\n",
		"etc/group":          "root:x:0:\ncore:x:1000:\n",
		"etc/shadow":         "root:*:19000:0:99999:7:::\ncore:*:19000:0:99999:7:::\n",
		"etc/gshadow":        "root:*::\ncore:!::\n",
		"etc/selinux/config": "SELINUX=disabled\nSELINUXTYPE=targeted\n",
		"home/core/.keep":    "",
		"etc/hostname":       "localhost\n", // images ship one: Ignition must overwrite it
	}
	for name, data := range seed {
		writeFile(t, filepath.Join(root, name), data, 0o644)
	}
	// Debian's build relabels for SELinux after the files stage by running
	// setfiles (package policycoreutils). Labels are not what this test is
	// about, and our images do not relabel: a no-op stands in for it.
	writeFile(t, filepath.Join(bin, "setfiles"), "#!/bin/sh\nexit 0\n", 0o755)
	if err := os.Chown(filepath.Join(root, "home/core"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(run, "config.ign")
	writeFile(t, cfgFile, string(config), 0o600)
	for _, stage := range []string{"fetch", "files"} {
		cmd := exec.Command(clientPath, "--platform", "file", "--stage", stage, "--root", root,
			"--config-cache", filepath.Join(run, "config.json"), "--state-file", filepath.Join(run, "state"), "--log-to-stdout")
		cmd.Env = append(os.Environ(), "IGNITION_CONFIG_FILE="+cfgFile, "PATH="+bin+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ignition --stage %s: %v\n%s", stage, err, lastLines(string(out), 15))
		}
	}

	type written struct {
		Mode     os.FileMode
		Contents string
	}
	read := func(path string) written {
		p := filepath.Join(root, path)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("ignition did not write %s: %v", path, err)
			return written{}
		}
		b, _ := os.ReadFile(p)
		return written{st.Mode().Perm(), string(b)}
	}
	r := decode(t, config)
	want, got := map[string]written{}, map[string]written{}
	for _, f := range r.Storage.Files {
		contents, mode := r.file(t, f.Path)
		want[f.Path] = written{os.FileMode(mode), contents}
		got[f.Path] = read(f.Path)
	}
	for _, u := range []string{"etcd-member.service", "kubelet.service", BootedUnit, HeartbeatUnit, HeartbeatTimer} {
		p := "/etc/systemd/system/" + u
		want[p] = written{0o644, r.unitContents(t, u)}
		got[p] = read(p)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files written by Ignition (-want +got):\n%s", diff)
	}
	if motd := read("/etc/motd"); motd.Contents != "hello" {
		t.Errorf("common snippet's /etc/motd: %q", motd.Contents)
	}
	preset := read("/etc/systemd/system-preset/20-ignition.preset").Contents
	for _, u := range []string{"etcd-member.service", "kubelet.service", BootedUnit, HeartbeatTimer} {
		if !strings.Contains(preset, "enable "+u+"\n") {
			t.Errorf("preset does not enable %s:\n%s", u, preset)
		}
	}
	if keys := read("/home/core/.ssh/authorized_keys.d/ignition").Contents; !strings.Contains(keys, testKey) {
		t.Errorf("core's authorized keys: %q", keys)
	}
	if w := got[ReportEnvPath]; w.Mode != 0o600 || !strings.Contains(w.Contents, "UNDERCLOUD_BOOTED_URL="+realPerBoot(in).BootedURL+"\n") {
		t.Errorf("%s: %+v", ReportEnvPath, w)
	}

	// The reporter Ignition wrote, run over what Ignition wrote, reports
	// exactly that: every file but the per-boot one, and their digest.
	wantFiles := map[string]string{}
	for p, w := range got {
		if p != ReportEnvPath {
			wantFiles[p] = sha256Hex(w.Contents)
		}
	}
	rep := runReporter(t, filepath.Join(root, ReporterPath), root, "booted")
	if diff := cmp.Diff(reportBody{Digest: filesDigest(wantFiles), Hostname: in.Machine.Name, Files: wantFiles}, rep.body); diff != "" {
		t.Errorf("booted report (-want +got):\n%s", diff)
	}
	if rep.agent != ReportAgent+" (booted)" {
		t.Errorf("User-Agent %q", rep.agent)
	}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
