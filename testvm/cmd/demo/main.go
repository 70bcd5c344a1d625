// Command demo is `make demo`: the example lab site -- one master and two
// workers, each a QEMU VM with an IPMI BMC -- PXE-booting from the real
// undercloud binary inside a private network namespace. It prints the URL of
// the web UI and API (reachable from the host through a veth pair) and an
// operator token, streams one line per boot event, and stops cleanly on
// Ctrl-C: VMs, BMCs, the server and the namespace are all removed.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/testvm"
)

// The lab site of the example repo: names, MACs, firmware and BMC ports
// (examples/site-repo/files/sites/lab/site.yaml).
var machines = []struct {
	name, mac string
	fw        testvm.Firmware
	bmcPort   int
}{
	{"lab-m1", "52:54:00:99:00:11", testvm.BIOS, 6211},
	{"lab-w1", "52:54:00:99:00:21", testvm.BIOS, 6221},
	{"lab-w2", "52:54:00:99:00:22", testvm.UEFI, 6222},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	bin := fs.String("bin", "bin/undercloud", "the undercloud binary")
	imageDir := fs.String("image", "build/testimage", "the test node image (make image)")
	keep := fs.Bool("keep", false, "keep the lab's work directory (logs, serial consoles) after Ctrl-C")
	port := fs.Int("port", 8080, "the server's machine-facing HTTP port (boot endpoints)")
	opPort := fs.Int("operator-port", 8443, "the server's operator HTTPS port (UI, API, metrics)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo creates network namespaces and taps: run it as root")
	}
	binPath, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	img, err := testvm.LoadImage(*imageDir)
	if err != nil {
		return fmt.Errorf("%w (run make image)", err)
	}
	work, err := os.MkdirTemp("", "undercloud-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	repo, err := siterepo.Build(filepath.Join(work, "site-repo"), siterepo.Options{Kernel: img.Kernel, Initrd: img.Initrd, Rootfs: img.Rootfs, Disk: img.Disk})
	if err != nil {
		return err
	}
	token := randomHex(16)
	secrets := filepath.Join(work, "secrets.yaml")
	if err := os.WriteFile(secrets, []byte(fmt.Sprintf(`api_tokens:
  - {name: demo, role: operator, token: %s}
bmc:
  lab-bmc: {username: %s, password: %s}
`, token, testvm.BMCUser, testvm.BMCPassword)), 0o600); err != nil {
		return err
	}

	fmt.Fprintln(out, "demo: starting the lab (network namespace, bridge, host link)...")
	lab, err := testvm.NewLab(ctx, testvm.Options{HostLink: true, KeepDir: *keep, MaxVMs: len(machines),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "\ndemo: stopping VMs, BMCs, the server and the lab...")
		lab.Close()
		if *keep {
			fmt.Fprintln(out, "demo: logs kept in", lab.Dir, "and", work)
		}
		fmt.Fprintln(out, "demo: stopped cleanly")
	}()
	data := filepath.Join(work, "data")
	srv, err := lab.Start("undercloud", binPath, "serve", "--repo", repo.Dir, "--data-dir", data, "--artifact-root", repo.ArtifactRoot,
		"--sites", "lab", "--listen", fmt.Sprintf(":%d", *port), "--operator-listen", fmt.Sprintf(":%d", *opPort),
		"--secrets", secrets, "--refresh", "5s")
	if err != nil {
		return err
	}
	if err := waitHealthy(ctx, lab, *port, srv); err != nil {
		return err
	}
	url := fmt.Sprintf("https://%s:%d/", lab.FromHost, *opPort)
	cert := filepath.Join(data, "operator-tls.crt")
	fp, err := certFingerprint(cert)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `
  undercloud is serving the lab site (1 master, 2 workers) on %s inside namespace %s
  Web UI and API, from this host:  %s
    The server's self-signed certificate is %s,
    SHA-256 %s: accept it in the browser if the fingerprint matches.
  Operator token: %s
    (log in with it, or: curl --cacert %s -H 'Authorization: Bearer %s' %sapi/v1/machines)
  Server log: %s
  Ctrl-C stops everything.

`, lab.ServerAddr, lab.Name, url, cert, fp, token, cert, token, url, srv.Log)

	for _, m := range machines {
		hw, _ := net.ParseMAC(m.mac)
		vm, err := lab.StartVM(ctx, testvm.VMConfig{Name: m.name, MAC: hw, Firmware: m.fw, BootTimeout: 24 * time.Hour})
		if err != nil {
			return err
		}
		if _, err := lab.StartBMC(ctx, vm, m.bmcPort); err != nil {
			return err
		}
		fmt.Fprintf(out, "demo: %s powered on (%s, MAC %s, BMC ipmi %s:%d)\n", m.name, m.fw, m.mac, lab.ServerAddr, m.bmcPort)
	}
	return streamEvents(ctx, filepath.Join(data, "inventory.db"), out, srv)
}

// certFingerprint is the SHA-256 of a PEM certificate's DER, as the server
// logs it and openssl x509 -fingerprint -sha256 prints it.
func certFingerprint(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("%s: no PEM certificate", file)
	}
	sum := sha256.Sum256(block.Bytes)
	pairs := make([]string, len(sum))
	for i, c := range sum {
		pairs[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(pairs, ":"), nil
}

// waitHealthy waits for the server's /healthz, from inside the lab.
func waitHealthy(ctx context.Context, lab *testvm.Lab, port int, srv *testvm.Proc) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-srv.Done():
			b, _ := os.ReadFile(srv.Log)
			return fmt.Errorf("undercloud exited: %v\n%s", srv.Err(), b)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		resp, err := lab.HTTPClient(2 * time.Second).Get(fmt.Sprintf("http://%s:%d/healthz", lab.ServerAddr, port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("undercloud did not become healthy within a minute; see %s", srv.Log)
}

// streamEvents prints every boot event as it is recorded, one line each,
// until ctx ends or the server exits.
func streamEvents(ctx context.Context, dbPath string, out io.Writer, srv *testvm.Proc) error {
	db, err := inventory.OpenReadOnly(ctx, dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	var last int64
	names := map[string]string{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-srv.Done():
			return fmt.Errorf("undercloud exited: %v (log: %s)", srv.Err(), srv.Log)
		case <-time.After(300 * time.Millisecond):
		}
		if last, err = printNew(ctx, db, last, names, out); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

func printNew(ctx context.Context, db *sql.DB, after int64, names map[string]string, out io.Writer) (int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT e.id, e.at, e.mac, coalesce(nullif(m.name, ''), e.mac), e.kind, e.ip, e.version, e.detail
		FROM boot_events e LEFT JOIN machines m ON m.mac = e.mac WHERE e.id > ? ORDER BY e.id LIMIT 500`, after)
	if err != nil {
		return after, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var at, mac, name, kind, ip, version, detail string
		if err := rows.Scan(&id, &at, &mac, &name, &kind, &ip, &version, &detail); err != nil {
			return after, err
		}
		after = id
		if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
			at = t.Local().Format("15:04:05.000")
		}
		if len(version) > 12 {
			version = version[:12]
		}
		fmt.Fprintf(out, "%s  %-18s %-16s %-15s %-12s %s\n", at, name, kind, ip, version, short(detail))
	}
	return after, rows.Err()
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 70 {
		return s[:67] + "..."
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
