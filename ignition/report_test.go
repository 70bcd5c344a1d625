package ignition

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// filesDigest is testvm.FilesDigest (which this package cannot import): the
// sha256 of the lines "<path> <sha256>\n" sorted bytewise.
func filesDigest(files map[string]string) string {
	var lines []string
	for p, h := range files {
		lines = append(lines, p+" "+h+"\n")
	}
	sort.Strings(lines)
	return sha256Hex(strings.Join(lines, ""))
}

// reportBody is pxe's callbackBody.
type reportBody struct {
	Digest   string            `json:"digest"`
	Hostname string            `json:"hostname"`
	Files    map[string]string `json:"files"`
}

type postedReport struct {
	path, agent string
	body        reportBody
}

// reportServer answers every POST with status and remembers it.
type reportServer struct {
	*httptest.Server
	mu      sync.Mutex
	status  int
	reports []postedReport
}

func newReportServer(t *testing.T, status int) *reportServer {
	s := &reportServer{status: status}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rep := postedReport{path: r.URL.Path + "?" + r.URL.RawQuery, agent: r.UserAgent()}
		if err := json.Unmarshal(b, &rep.body); err != nil {
			t.Errorf("report body is not JSON: %v\n%s", err, b)
		}
		s.mu.Lock()
		s.reports = append(s.reports, rep)
		st := s.status
		s.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *reportServer) all() []postedReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]postedReport(nil), s.reports...)
}

// runReporterEnv runs the reporter script with sh over the files under
// root, with the per-boot environment pointing at srv; it returns the exit
// status.
func runReporterEnv(t *testing.T, script, root, kind string, srv *reportServer, bootID string) (int, string) {
	t.Helper()
	need := func(tool string) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install the Debian package that provides it (curl, coreutils)", tool)
		}
	}
	need("curl")
	need("sha256sum")
	cmd := exec.Command("sh", script, kind)
	cmd.Env = append(os.Environ(), "UNDERCLOUD_REPORT_ROOT="+root, "UNDERCLOUD_BOOT_ID="+bootID,
		"UNDERCLOUD_BOOTED_URL="+srv.URL+"/booted?token=T", "UNDERCLOUD_HEARTBEAT_URL="+srv.URL+"/heartbeat?token=H")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// runReporter runs the reporter once against a server that accepts, and
// returns the one report it received.
func runReporter(t *testing.T, script, root, kind string) postedReport {
	t.Helper()
	srv := newReportServer(t, http.StatusNoContent)
	if code, out := runReporterEnv(t, script, root, kind, srv, "b1"); code != 0 {
		t.Fatalf("reporter exited %d:\n%s", code, out)
	}
	reps := srv.all()
	if len(reps) != 1 {
		t.Fatalf("%d reports, want 1", len(reps))
	}
	return reps[0]
}

// writeReporter writes the reporter for paths, and the files under root.
func writeReporter(t *testing.T, files map[string]string) (script, root string) {
	t.Helper()
	root = t.TempDir()
	var paths []string
	for p, c := range files {
		paths = append(paths, p)
		writeFile(t, filepath.Join(root, p), c, 0o644)
	}
	text, err := reporterScript(append(paths, ReportEnvPath))
	if err != nil {
		t.Fatal(err)
	}
	script = filepath.Join(t.TempDir(), "undercloud-report")
	writeFile(t, script, text, 0o755)
	return script, root
}

func TestReporter(t *testing.T) {
	files := map[string]string{
		"/etc/hostname":           "node-1\nignored\n",
		"/etc/a b/it's \"odd\"":   "x",
		"/etc/a":                  "",
		"/etc/systemd/system/x.s": "[Unit]\n",
	}
	script, root := writeReporter(t, files)
	want := map[string]string{}
	for p, c := range files {
		want[p] = sha256Hex(c)
	}
	wantBody := reportBody{Digest: filesDigest(want), Hostname: "node-1", Files: want}

	t.Run("booted", func(t *testing.T) {
		rep := runReporter(t, script, root, "booted")
		if diff := cmp.Diff(wantBody, rep.body); diff != "" {
			t.Errorf("body (-want +got):\n%s", diff)
		}
		if rep.agent != "undercloud-report/1 (booted)" || rep.path != "/booted?token=T" {
			t.Errorf("agent %q, path %q", rep.agent, rep.path)
		}
	})
	t.Run("heartbeat", func(t *testing.T) {
		rep := runReporter(t, script, root, "heartbeat")
		if rep.agent != "undercloud-report/1 (heartbeat)" || rep.path != "/heartbeat?token=H" || rep.body.Digest != wantBody.Digest {
			t.Errorf("agent %q, path %q, digest %s", rep.agent, rep.path, rep.body.Digest)
		}
	})
	t.Run("a boot is reported once", func(t *testing.T) {
		srv := newReportServer(t, http.StatusNoContent)
		for i := range 2 {
			if code, out := runReporterEnv(t, script, root, "booted", srv, "boot-2"); code != 0 {
				t.Fatalf("run %d exited %d:\n%s", i, code, out)
			}
		}
		if n := len(srv.all()); n != 1 {
			t.Errorf("%d reports of one boot, want 1", n)
		}
	})
	t.Run("a refusal is final", func(t *testing.T) {
		srv := newReportServer(t, http.StatusForbidden)
		if code, out := runReporterEnv(t, script, root, "booted", srv, "boot-3"); code != refusedStatus {
			t.Errorf("exit %d on 403, want %d (RestartPreventExitStatus):\n%s", code, refusedStatus, out)
		}
	})
	t.Run("a server error is retried by systemd", func(t *testing.T) {
		srv := newReportServer(t, http.StatusNotImplemented) // not one curl retries itself
		if code, out := runReporterEnv(t, script, root, "heartbeat", srv, "boot-4"); code != 1 {
			t.Errorf("exit %d on 501, want 1 (Restart=on-failure):\n%s", code, out)
		}
	})
}

func TestFilesDigestVector(t *testing.T) {
	// The vector of testvm.TestFilesDigest: printf '/a 1111\n/etc/hostname 2222\n' | sha256sum
	if got := filesDigest(map[string]string{"/etc/hostname": "2222", "/a": "1111"}); got != "2d74599954b06f93fc895984fd31a8a15d86802cae1be1b1f3eb72e3ae715ac3" {
		t.Errorf("filesDigest = %s", got)
	}
}

func TestReportUnits(t *testing.T) {
	files := repo("3.3.0", nil)
	files["sites/lab/site.yaml"] = []byte(strings.Replace(string(files["sites/lab/site.yaml"]), "machines:", "heartbeat: {interval: 5m}\nmachines:", 1))
	in := input(t, files, "w1", false)
	out, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, out)
	tests := map[string]struct {
		enabled bool
		want    []string
	}{
		BootedUnit: {true, []string{"Type=oneshot", "Wants=network-online.target", "After=network-online.target",
			"EnvironmentFile=" + ReportEnvPath, "ExecStart=" + ReporterPath + " booted",
			"Restart=on-failure", "RestartSec=30s", "RestartPreventExitStatus=3", "StartLimitIntervalSec=0", "WantedBy=multi-user.target"}},
		HeartbeatUnit:  {false, []string{"Type=oneshot", "EnvironmentFile=" + ReportEnvPath, "ExecStart=" + ReporterPath + " heartbeat"}},
		HeartbeatTimer: {true, []string{"OnBootSec=300s", "OnUnitActiveSec=300s", "WantedBy=timers.target"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var u string
			if tc.enabled {
				u = r.unit(t, name)
			} else {
				u = r.unitContents(t, name)
			}
			for _, w := range tc.want {
				if !strings.Contains(u, "\n"+w+"\n") {
					t.Errorf("lacks %q:\n%s", w, u)
				}
			}
			if strings.Contains(u, "token") || strings.Contains(u, "http") {
				t.Errorf("a unit carries a per-boot value:\n%s", u)
			}
			if sa, err := exec.LookPath("systemd-analyze"); err == nil {
				verifyUnit(t, sa, name, u)
			}
		})
	}
	script, mode := r.file(t, ReporterPath)
	if mode != 0o755 || !strings.HasPrefix(script, "#!/bin/sh\n") {
		t.Errorf("reporter mode %o:\n%.200s", mode, script)
	}
	for _, p := range []string{HostnamePath, NetworkPath, VersionPath, ReporterPath, BootstrapKubeconfigPath,
		"/etc/systemd/system/kubelet.service", "/etc/systemd/system/" + BootedUnit, "/etc/systemd/system/" + HeartbeatTimer} {
		if !strings.Contains(script, "\nf "+shellQuote(p)+" ") {
			t.Errorf("reporter does not list %s", p)
		}
	}
	if strings.Contains(script, ReportEnvPath+"' '") {
		t.Errorf("reporter lists the per-boot %s", ReportEnvPath)
	}
}

// verifyUnit runs systemd-analyze verify on a unit, where the tool exists:
// a bonus check, the ExecStart binary is made to exist.
func verifyUnit(t *testing.T, sa, name, contents string) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, name), strings.ReplaceAll(contents, ReporterPath, "/bin/true"), 0o644)
	if strings.HasSuffix(name, ".timer") {
		svc := strings.TrimSuffix(name, ".timer") + ".service"
		writeFile(t, filepath.Join(dir, svc), "[Service]\nType=oneshot\nExecStart=/bin/true\n", 0o644)
	}
	out, err := exec.Command(sa, "verify", "--man=no", filepath.Join(dir, name)).CombinedOutput()
	if err != nil && strings.Contains(string(out), name) {
		t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
	}
}

func TestAppendFile(t *testing.T) {
	in := input(t, repo("3.4.0", nil), "m1", false)
	cfg, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := AppendFile(cfg, "/etc/extra", 0o600, "a=b&c %\n")
	if err != nil {
		t.Fatal(err)
	}
	sp := specs()[specIndex("3.4.0")]
	if _, rpt, err := sp.parse(out); err != nil || failing(rpt) {
		t.Fatalf("appended config does not parse: %v %s", err, rpt)
	}
	r := decode(t, out)
	if c, mode := r.file(t, "/etc/extra"); c != "a=b&c %\n" || mode != 0o600 {
		t.Errorf("appended file %q mode %o", c, mode)
	}
	before, after := decode(t, cfg), r
	if len(after.Storage.Files) != len(before.Storage.Files)+1 || len(after.Systemd.Units) != len(before.Systemd.Units) {
		t.Errorf("files %d -> %d, units %d -> %d", len(before.Storage.Files), len(after.Storage.Files), len(before.Systemd.Units), len(after.Systemd.Units))
	}
	if _, err := AppendFile(out, "/etc/extra", 0o600, "again"); err == nil {
		t.Error("a second file at the same path accepted")
	}
	bare, err := AppendFile([]byte(`{"ignition":{"version":"3.0.0"}}`), "/etc/x", 0o644, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, rpt, err := specs()[0].parse(bare); err != nil || failing(rpt) {
		t.Errorf("a config without storage: %v %s\n%s", err, rpt, bare)
	}
	for _, cfg := range []string{
		`{"ignition":{"version":"3.0.0"},"storage":{}}`,
		`{"ignition":{"version":"3.0.0"},"storage":{"files":[]}}`,
		`{"ignition":{"version":"3.0.0"},"storage":{"directories":[{"path":"/d"}]}}`,
		"{\n  \"storage\": {\n    \"files\": [\n      {\"path\": \"/a\"}\n    ]\n  },\n  \"ignition\": {\"version\": \"3.0.0\"}\n}\n",
	} {
		out, err := AppendFile([]byte(cfg), "/etc/x", 0o644, "x")
		if err != nil {
			t.Fatalf("%s: %v", cfg, err)
		}
		if _, rpt, err := specs()[0].parse(out); err != nil || failing(rpt) {
			t.Errorf("%s: %v %s\n%s", cfg, err, rpt, out)
		}
		if c, _ := decode(t, out).file(t, "/etc/x"); c != "x" {
			t.Errorf("%s: appended %q", cfg, c)
		}
	}
	if _, err := AppendFile([]byte(`[]`), "/etc/x", 0o644, "x"); err == nil {
		t.Error("not an object accepted")
	}
}

// The gate refuses a snippet that writes the per-boot file: served, it
// would be there twice.
func TestGateRefusesReportEnvInSnippet(t *testing.T) {
	files := repo("3.3.0", map[string]string{
		snippetDir + "common.bu": "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: " + ReportEnvPath + "\n      contents:\n        inline: x\n",
	})
	in := input(t, files, "w1", false)
	if err := (Renderer{}).Render(in.Release, in.Machine); err == nil {
		t.Error("gate accepted a snippet writing " + ReportEnvPath)
	}
	var _ sites.MachineRenderer = Renderer{}
}
