package packaging_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
)

// The lab site's first machine: its MAC gets its reserved address.
const (
	labMAC  = "52:54:00:99:00:11"
	labIP   = "10.99.0.11"
	serveIP = "10.99.0.1"
)

// TestDebPackage builds the package, installs it with dpkg into a root of
// its own (maintainer scripts included, run chrootless against that root),
// checks what it installed, then runs the unit's command line the way
// systemd would: as the package's unprivileged user, with the unit's
// capabilities only and the settings of /etc/default/undercloud, in a
// network namespace. A DHCP client and an iPXE script fetch must work
// against it, and an artifact only root can read must be refused.
func TestDebPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the package test needs root: it runs dpkg --root, creates network namespaces and switches to the service user (run it as root, as make test does in CI)")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "setpriv", "ip", "udhcpc", "curl", "useradd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run make deps (%v)", tool, err)
		}
	}
	// A work dir the service user can traverse (t.TempDir is 0700).
	work, err := os.MkdirTemp("", "ucdeb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}

	deb := buildDeb(t, work)
	checkContents(t, deb)
	root := filepath.Join(work, "root")
	uid, gid := install(t, root, deb)

	// The settings and artifacts of a lab site, as an operator would set
	// them up: artifacts readable by the service, and one only root can
	// read.
	arts := filepath.Join(root, "var/lib/undercloud/artifacts")
	kernel, initrd := filepath.Join(arts, "vmlinuz"), filepath.Join(arts, "initrd.img")
	rootfs, disk := filepath.Join(arts, "rootfs.img"), filepath.Join(arts, "disk.img.gz")
	for _, f := range []string{kernel, initrd, rootfs, disk} {
		if err := os.WriteFile(f, []byte("placeholder "+filepath.Base(f)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	secretText := "ROOT-ONLY-" + hex.EncodeToString(secret)
	secretFile := filepath.Join(arts, "root-only.img")
	if err := os.WriteFile(secretFile, []byte(secretText), 0o600); err != nil {
		t.Fatal(err)
	}
	repo, err := siterepo.Build(filepath.Join(work, "site-repo"), siterepo.Options{Kernel: kernel, Initrd: initrd, Rootfs: rootfs, Disk: disk, ArtifactRoot: arts})
	if err != nil {
		t.Fatal(err)
	}

	// git refuses a repo of another owner (safe.directory): a local repo
	// served by the service belongs to its user.
	run(t, "chown", "-R", fmt.Sprintf("%d:%d", uid, gid), repo.Dir)
	srv, cli := netnsPair(t)
	env := settings(t, root)
	env["UNDERCLOUD_REPO"] = repo.Dir
	env["UNDERCLOUD_INTERFACE"] = "uc0"
	env["UNDERCLOUD_SITES"] = "lab"
	env["UNDERCLOUD_REFRESH"] = "1s"
	log := startUnit(t, root, srv, uid, gid, env)

	// DHCP: the machine gets its reserved address from the service.
	lease := udhcpc(t, cli)
	if lease["ip"] != labIP || lease["serverid"] != serveIP {
		t.Fatalf("DHCP lease from the service: %v", lease)
	}
	if out, err := exec.Command("ip", "-n", cli, "addr", "add", labIP+"/24", "dev", "uc1").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	script := curl(t, cli, "/ipxe?mac="+labMAC)
	if !strings.HasPrefix(script, "#!ipxe") {
		t.Fatalf("GET /ipxe: not an iPXE script:\n%s", script)
	}

	// A version whose initrd is the root-only file: the gate cannot read
	// it, says so, and the service goes on serving the old version.
	sum := sha256.Sum256([]byte(secretText))
	catalog, err := repo.File("images/testnode.yaml")
	if err != nil {
		t.Fatal(err)
	}
	isum := sha256.Sum256([]byte("placeholder initrd.img\n"))
	patched := strings.Replace(strings.Replace(string(catalog), "path: initrd.img", "path: root-only.img", 1),
		hex.EncodeToString(isum[:]), hex.EncodeToString(sum[:]), 1)
	if patched == string(catalog) {
		t.Fatalf("could not point the catalog's initrd at the root-only file:\n%s", catalog)
	}
	if _, err := repo.Commit("lab: initrd only root can read", map[string][]byte{"images/testnode.yaml": []byte(patched)}, "v4"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Bind("lab", "v4"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return log.has("root-only.img", "permission denied") }) {
		t.Fatalf("the service did not report a permission error for the root-only artifact:\n%s", log.String())
	}
	if script := curl(t, cli, "/ipxe?mac="+labMAC); strings.Contains(script, hex.EncodeToString(sum[:])) || !strings.HasPrefix(script, "#!ipxe") {
		t.Errorf("GET /ipxe after the rejected version:\n%s", script)
	}
	body := curlAny(t, cli, "/images/sha256/"+hex.EncodeToString(sum[:]))
	if strings.Contains(body, secretText) || strings.Contains(log.String(), secretText) {
		t.Errorf("the root-only file's content left the service")
	}

	stopUnit(t, log)
	purge(t, root)
}

// buildDeb runs build-deb.sh on UNDERCLOUD_BIN (make test's binary) or a
// fresh build, and returns the .deb.
func buildDeb(t *testing.T, work string) string {
	t.Helper()
	bin := os.Getenv("UNDERCLOUD_BIN")
	if bin == "" {
		bin = filepath.Join(work, "undercloud")
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/undercloud").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	out, err := exec.Command("./build-deb.sh", bin, "v1.2.3-4-gabcdef0", filepath.Join(work, "out")).Output()
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, stderrOf(err))
	}
	deb := strings.TrimSpace(string(out))
	if filepath.Base(deb) != "undercloud_1.2.3+4.gabcdef0_amd64.deb" && !strings.HasPrefix(filepath.Base(deb), "undercloud_1.2.3+4.gabcdef0_") {
		t.Errorf("package name %s: want the version from git describe, 1.2.3+4.gabcdef0", deb)
	}
	return deb
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// checkContents compares the package's file list (dpkg-deb -c) with what
// it must install, modes and owners included.
func checkContents(t *testing.T, deb string) {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || strings.HasSuffix(f[5], "/") {
			continue
		}
		got[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
	}
	want := map[string]string{
		"/usr/bin/undercloud":                    "-rwxr-xr-x root/root",
		"/lib/systemd/system/undercloud.service": "-rw-r--r-- root/root",
		"/etc/default/undercloud":                "-rw-r--r-- root/root",
		"/etc/undercloud/secrets.yaml.example":   "-rw------- root/root",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s in the package: %q, want %q", p, got[p], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("package files: %v, want only %v", got, want)
	}
}

// install installs deb into root with dpkg, whose maintainer scripts see
// the root as DPKG_ROOT, and returns the uid and gid of the service user
// the postinst created there. root's /etc starts as a copy of the host's,
// so the new ids are free on the host too.
func install(t *testing.T, root, deb string) (uid, gid int) {
	t.Helper()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for f, mode := range map[string]os.FileMode{"passwd": 0o644, "group": 0o644, "shadow": 0o640, "gshadow": 0o640} {
		b, err := os.ReadFile("/etc/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", f), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	// --force-depends: the root has no package database but this one.
	if out, err := exec.Command("dpkg", "--root="+root, "--force-script-chrootless", "--force-depends", "-i", deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	uid, gid = lookup(t, root, "passwd"), lookup(t, root, "group")
	if uid == 0 || gid == 0 || uid >= 1000 {
		t.Fatalf("service user undercloud: uid %d gid %d, want a system user", uid, gid)
	}
	for p, want := range map[string]string{
		"var/lib/undercloud":                    fmt.Sprintf("drwxr-x--- %d:%d", uid, gid),
		"var/lib/undercloud/artifacts":          fmt.Sprintf("drwxr-x--- %d:%d", uid, gid),
		"etc/undercloud":                        fmt.Sprintf("drwxr-x--- 0:%d", gid),
		"etc/undercloud/secrets.yaml.example":   "-rw------- 0:0",
		"usr/bin/undercloud":                    "-rwxr-xr-x 0:0",
		"lib/systemd/system/undercloud.service": "-rw-r--r-- 0:0",
	} {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%v %d:%d", st.Mode(), sys.Uid, sys.Gid); got != want {
			t.Errorf("installed /%s: %s, want %s", p, got, want)
		}
	}
	return uid, gid
}

// lookup returns undercloud's id in root's /etc/passwd or /etc/group.
func lookup(t *testing.T, root, db string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc", db))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[0] == "undercloud" {
			n, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no undercloud in %s's /etc/%s", root, db)
	return 0
}

// purge removes the package and checks that postrm took the data dir and
// the user with it.
func purge(t *testing.T, root string) {
	t.Helper()
	if out, err := exec.Command("dpkg", "--root="+root, "--force-script-chrootless", "--purge", "undercloud").CombinedOutput(); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/undercloud")); !os.IsNotExist(err) {
		t.Errorf("purge left /var/lib/undercloud: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); strings.Contains(string(b), "\nundercloud:") {
		t.Error("purge left the user undercloud")
	}
}

// settings reads /etc/default/undercloud from root, with its paths moved
// under root.
func settings(t *testing.T, root string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc/default/undercloud"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if line == "" || line[0] == '#' || !ok {
			continue
		}
		if strings.HasPrefix(v, "/") {
			v = filepath.Join(root, v)
		}
		env[k] = v
	}
	for _, k := range []string{"UNDERCLOUD_DATA_DIR", "UNDERCLOUD_ARTIFACT_ROOT", "UNDERCLOUD_OPERATOR_LISTEN"} {
		if env[k] == "" {
			t.Errorf("/etc/default/undercloud sets no %s", k)
		}
	}
	return env
}

// unit returns the unit's ExecStart command line and ambient capabilities.
func unit(t *testing.T, root string) (argv, caps []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/undercloud.service"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = v
		}
	}
	for k, want := range map[string]string{"User": "undercloud", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/undercloud", "StateDirectory": "undercloud",
		"EnvironmentFile": "/etc/default/undercloud", "Restart": "on-failure", "CapabilityBoundingSet": keys["AmbientCapabilities"]} {
		if keys[k] != want {
			t.Errorf("unit: %s=%q, want %q", k, keys[k], want)
		}
	}
	for _, c := range strings.Fields(keys["AmbientCapabilities"]) {
		caps = append(caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Fields(keys["ExecStart"]), caps
}

// serviceLog is the running service's output.
type serviceLog struct {
	mu   sync.Mutex
	buf  strings.Builder
	cmd  *exec.Cmd
	done chan error
}

func (l *serviceLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *serviceLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// has reports whether one line holds every part.
func (l *serviceLog) has(parts ...string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// startUnit runs the unit's ExecStart in netns ns as uid:gid with the
// unit's capabilities (ambient, inheritable and bounding set), no new
// privileges and only env, as systemd would, and waits until it serves.
func startUnit(t *testing.T, root, ns string, uid, gid int, env map[string]string) *serviceLog {
	t.Helper()
	argv, caps := unit(t, root)
	if len(argv) == 0 || len(caps) == 0 {
		t.Fatalf("unit: ExecStart %q, capabilities %q", argv, caps)
	}
	argv[0] = filepath.Join(root, argv[0])
	set := "-all,+" + strings.Join(caps, ",+")
	args := append([]string{"netns", "exec", ns, "setpriv", "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid),
		"--clear-groups", "--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set, "--no-new-privs"}, argv...)
	l := &serviceLog{done: make(chan error, 1)}
	l.cmd = exec.Command("ip", args...)
	l.cmd.Dir = "/"
	l.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range env {
		l.cmd.Env = append(l.cmd.Env, k+"="+v)
	}
	l.cmd.Stdout, l.cmd.Stderr = l, l
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.done <- l.cmd.Wait() }()
	t.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			l.cmd.Process.Kill()
			<-l.done
		}
	})
	if !waitFor(30*time.Second, func() bool {
		select {
		case err := <-l.done:
			l.done <- err
			return true
		default:
		}
		return l.has("undercloud serving")
	}) || !l.has("undercloud serving") {
		t.Fatalf("the service did not start:\n%s", l.String())
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", l.cmd.Process.Pid)); err == nil {
		if !strings.Contains(string(b), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid)) {
			t.Errorf("the service does not run as uid %d:\n%s", uid, b)
		}
	}
	return l
}

// stopUnit stops the service as systemd does (SIGTERM) and checks that it
// exits cleanly.
func stopUnit(t *testing.T, l *serviceLog) {
	t.Helper()
	l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-l.done:
		if err != nil {
			t.Errorf("the service exited with %v on SIGTERM:\n%s", err, l.String())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("the service did not stop within 20 s of SIGTERM")
	}
}

// netnsPair makes two network namespaces joined by a veth: uc0 (the
// service's, 10.99.0.1/24) and uc1 (the machine's, with lab-m1's MAC).
func netnsPair(t *testing.T) (srv, cli string) {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	srv = fmt.Sprintf("ucdeb-%d-%x-s", os.Getpid(), b)
	cli = fmt.Sprintf("ucdeb-%d-%x-c", os.Getpid(), b)
	for _, ns := range []string{srv, cli} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", srv, "link", "add", "uc0", "type", "veth", "peer", "name", "uc1", "netns", cli)
	run(t, "ip", "-n", srv, "addr", "add", serveIP+"/24", "dev", "uc0")
	run(t, "ip", "-n", srv, "link", "set", "uc0", "up")
	run(t, "ip", "-n", cli, "link", "set", "uc1", "address", labMAC)
	run(t, "ip", "-n", cli, "link", "set", "uc1", "up")
	return srv, cli
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// udhcpc runs busybox udhcpc in ns until it holds a lease and returns the
// variables its script was given.
func udhcpc(t *testing.T, ns string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	env, script := filepath.Join(dir, "env"), filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > "+env+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "udhcpc", "-f", "-q", "-n", "-i", "uc1", "-s", script, "-t", "5", "-T", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(env)
	if err != nil {
		t.Fatalf("udhcpc got no lease: %v\n%s", err, out)
	}
	v := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, val, ok := strings.Cut(line, "="); ok {
			v[k] = val
		}
	}
	return v
}

// curl GETs path from the service's machine-facing address, from ns, and
// fails on an error status.
func curl(t *testing.T, ns, path string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-sS", "-f", "-m", "10", "http://"+serveIP+":8080"+path).Output()
	if err != nil {
		t.Fatalf("GET %s: %v\n%s%s", path, err, out, stderrOf(err))
	}
	return string(out)
}

// curlAny GETs path whatever the status.
func curlAny(t *testing.T, ns, path string) string {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "exec", ns, "curl", "-sS", "-m", "10", "http://"+serveIP+":8080"+path).Output()
	return string(out)
}

func waitFor(d time.Duration, ok func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return true
		}
	}
	return ok()
}
