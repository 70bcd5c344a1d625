package testvm_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// undercloudBin is the binary under test: UNDERCLOUD_BIN (make test sets it
// to the one it built), else one built from this tree once per test binary.
func undercloudBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if b := os.Getenv("UNDERCLOUD_BIN"); b != "" {
			binPath = b
			return
		}
		root, err := testvm.RepoRoot()
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(os.TempDir(), fmt.Sprintf("undercloud-test-%d", os.Getpid()))
		out, err := exec.Command("go", "build", "-o", binPath, filepath.Join(root, "cmd", "undercloud")).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build undercloud: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// labServer is the real undercloud binary serving the example site repo
// inside a lab.
type labServer struct {
	t       testing.TB
	lab     *testvm.Lab
	repo    *siterepo.Repo
	dataDir string
	args    []string
	proc    *testvm.Proc
	db      *sql.DB // read-only view of its inventory
}

// exampleRepo builds the example site repo around the test image.
func exampleRepo(t testing.TB) *siterepo.Repo {
	t.Helper()
	img := image(t)
	r, err := siterepo.Build(filepath.Join(t.TempDir(), "site-repo"), siterepo.Options{Kernel: img.Kernel, Initrd: img.Initrd, Rootfs: img.Rootfs, Disk: img.Disk})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startServer runs `undercloud serve` for the lab site inside the lab, and
// waits until it answers.
func startServer(t testing.TB, lab *testvm.Lab, repo *siterepo.Repo, extra ...string) *labServer {
	t.Helper()
	s := &labServer{t: t, lab: lab, repo: repo, dataDir: filepath.Join(t.TempDir(), "data")}
	s.args = append([]string{undercloudBin(t), "serve", "--repo", repo.Dir, "--data-dir", s.dataDir, "--artifact-root", repo.ArtifactRoot,
		"--sites", "lab", "--listen", ":8080", "--operator-listen", ":8443", "--refresh", "1s", "--log-level", "debug"}, extra...)
	s.start()
	// Stop the server before its data dir (a TempDir, removed by a cleanup
	// that runs after this one) goes: the lab stops its processes only
	// after, and a server still writing its WAL made RemoveAll fail.
	t.Cleanup(func() { s.proc.Stop(10 * time.Second) })
	ro, err := inventory.OpenReadOnly(context.Background(), filepath.Join(s.dataDir, "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	s.db = ro
	return s
}

func (s *labServer) start() {
	s.t.Helper()
	p, err := s.lab.Start("undercloud", s.args...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.proc = p
	s.waitHealthy()
}

// waitHealthy polls /healthz from inside the lab.
func (s *labServer) waitHealthy() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, err := s.get("/healthz")
		if err == nil && code == http.StatusOK {
			return
		}
		select {
		case <-s.proc.Done():
			s.t.Fatalf("undercloud exited: %v\n%s", s.proc.Err(), tail(s.proc.Log, 40))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("undercloud not healthy after 60s (last: %d %v)\n%s", code, err, tail(s.proc.Log, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// client returns an HTTP client that connects from inside the lab.
func (s *labServer) client() *http.Client { return s.lab.HTTPClient(10 * time.Second) }

// url is the server's machine-facing base URL inside the lab.
func (s *labServer) url() string { return "http://" + s.lab.ServerAddr.String() + ":8080" }

// opURL is the server's operator base URL (UI, API, /metrics) inside the
// lab: HTTPS with the certificate the server generated into its data dir.
func (s *labServer) opURL() string { return "https://" + s.lab.ServerAddr.String() + ":8443" }

// caFile is that certificate, for the CLI's UNDERCLOUD_CA.
func (s *labServer) caFile() string { return filepath.Join(s.dataDir, "operator-tls.crt") }

// get fetches a path of the server from inside the lab namespace.
func (s *labServer) get(path string) (int, []byte, error) {
	resp, err := s.client().Get(s.url() + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// kill9 kills the server without a chance to clean up.
func (s *labServer) kill9() {
	s.t.Helper()
	if err := s.proc.Kill(); err != nil {
		s.t.Fatal(err)
	}
}

// query runs a read-only query on the server's inventory.
func (s *labServer) query(q string, args ...any) [][]string {
	s.t.Helper()
	rows, err := s.db.Query(q, args...)
	if err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			s.t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	return out
}

// activeCommit is the site's active commit, "" when none.
func (s *labServer) activeCommit(site string) string {
	rows := s.query(`SELECT coalesce(active_commit, '') FROM sites WHERE name = ?`, site)
	if len(rows) == 0 {
		return ""
	}
	return rows[0][0]
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// commitOf resolves a ref of the example repo.
func commitOf(t testing.TB, repo *siterepo.Repo, ref string) string {
	_, v := resolve(t, repo, ref)
	return v.Commit
}

// resolve fetches a mirror of the example repo and resolves a ref in it.
func resolve(t testing.TB, repo *siterepo.Repo, ref string) (*sites.Repo, sites.Version) {
	t.Helper()
	r := &sites.Repo{URL: repo.Dir, Dir: filepath.Join(t.TempDir(), "mirror")}
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := r.Resolve(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r, v
}

// renderConfig renders a machine's config at a ref as `undercloud render`
// shows it: as served, with placeholders for the per-boot values.
func renderConfig(t testing.TB, repo *siterepo.Repo, ref, site, machine string, bootstrapped bool) []byte {
	t.Helper()
	r, v := resolve(t, repo, ref)
	files, err := r.Files(v.Commit)
	if err != nil {
		t.Fatal(err)
	}
	cfg, ps := sites.Load(files)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	rel, err := cfg.Release(site, v)
	if err != nil {
		t.Fatal(err)
	}
	m := rel.Site.Machine(machine)
	out, err := ignition.Served(ignition.Input{Release: rel, Machine: m, Bootstrapped: bootstrapped}, ignition.GatePerBoot(m, v.Commit))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// renderedFiles returns the content of every file and unit a machine's
// rendered config declares, by path: what the real Ignition must write.
func renderedFiles(t testing.TB, repo *siterepo.Repo, ref, site, machine string, bootstrapped bool) map[string]string {
	t.Helper()
	out := renderConfig(t, repo, ref, site, machine, bootstrapped)
	var c struct {
		Storage struct {
			Files []struct {
				Path     string
				Contents struct{ Source *string }
			}
		}
		Systemd struct {
			Units []struct {
				Name     string
				Contents *string
			}
		}
	}
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, f := range c.Storage.Files {
		if f.Contents.Source != nil {
			want[f.Path] = dataURL(t, *f.Contents.Source)
		}
	}
	for _, u := range c.Systemd.Units {
		if u.Contents != nil {
			want["/etc/systemd/system/"+u.Name] = *u.Contents
		}
	}
	return want
}

// dataURL decodes the data: URLs the renderer writes.
func dataURL(t testing.TB, s string) string {
	t.Helper()
	head, data, ok := strings.Cut(strings.TrimPrefix(s, "data:"), ",")
	if !ok {
		t.Fatalf("not a data URL: %.40q", s)
	}
	if strings.HasSuffix(head, ";base64") {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	u, err := url.PathUnescape(data)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// tail returns the last n lines of a log file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// recordBootTime appends a boot's duration to UNDERCLOUD_BOOT_LOG (make test
// prints that file at the end) and to the test log.
func recordBootTime(t testing.TB, what string, d time.Duration) {
	t.Helper()
	line := fmt.Sprintf("%-58s %6.1fs\n", t.Name()+" "+what, d.Seconds())
	t.Log(strings.TrimSpace(line))
	if p := os.Getenv("UNDERCLOUD_BOOT_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			f.WriteString(line)
			f.Close()
		}
	}
}
