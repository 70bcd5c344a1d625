package power

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ipmiSim is OpenIPMI's ipmi_sim serving IPMI over LAN on 127.0.0.1: a real
// BMC protocol stack whose chassis control hook records what it was asked.
type ipmiSim struct {
	addr string // 127.0.0.1:port
	dir  string
}

// simConf is ipmi_sim's LAN config (see ipmi_lan(5) and the lab recipe):
// user 2 is admin with testPassword, reachable with every auth type.
const simConf = `name "node1"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 @PORT@
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "@DIR@/chassis.sh 0x20"
  user 2 true  "admin" "@PASSWORD@" admin 10 none md2 md5 straight
`

const simCommands = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`

// simChassis is the chassis_control hook: $1 is the MC address, $2 get, set
// or check, then name/value pairs. It keeps the power state in a file and
// appends every set to chassis.log, which is what the tests assert.
const simChassis = `#!/bin/sh
D=$(dirname "$0"); S=$D/power.state; [ -f "$S" ] || echo 0 > "$S"
op=$2; shift 2
case $op in
  check) exit 0 ;;
  get) for p in "$@"; do case $p in
         power) echo "power:$(cat "$S")";;
         boot) echo "boot:default";;
       esac; done ;;
  set) echo "set $*" >> "$D/chassis.log"
       while [ $# -ge 2 ]; do case $1 in
         power) echo "$2" > "$S";;
       esac; shift 2; done ;;
esac
`

// freeUDPPort returns a loopback UDP port that nothing listens on (now).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startIPMISim starts ipmi_sim in a temp dir and waits until it answers. It
// is killed when the test ends.
func startIPMISim(t *testing.T) *ipmiSim {
	t.Helper()
	sim := need(t, "ipmi_sim", "openipmi")
	need(t, "ipmitool", "ipmitool")
	dir := t.TempDir()
	port := freeUDPPort(t)
	conf := strings.NewReplacer("@PORT@", strconv.Itoa(port), "@DIR@", dir, "@PASSWORD@", testPassword).Replace(simConf)
	for name, body := range map[string]string{"lan.conf": conf, "cmd.emu": simCommands, "chassis.sh": simChassis} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	cmd := exec.Command(sim, "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "cmd.emu"),
		"-s", filepath.Join(dir, "state"), "-n")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its hook scripts die with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ipmi_sim: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("ipmi_sim output:\n%s", out.String())
		}
	})
	s := &ipmiSim{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
	d := s.driver(t, Config{Timeout: time.Second, Attempts: 1})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := d.Status(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipmi_sim does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.sets(t) // start the record empty
	return s
}

// driver returns an IPMI driver for the simulator; c adds to the defaults of
// a test (admin, the right password, short timeouts).
func (s *ipmiSim) driver(t *testing.T, c Config) Driver {
	t.Helper()
	c.Driver, c.Address = DriverIPMI, s.addr
	if c.Credentials == (Credentials{}) {
		c.Credentials = Credentials{Username: "admin", Password: testPassword}
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Backoff == 0 {
		c.Backoff = 10 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = testLogger(t)
	}
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sets returns the chassis settings the simulator was asked for since the
// last call, e.g. "set power 1", "set reset 1", "set boot pxe".
func (s *ipmiSim) sets(t *testing.T) []string {
	t.Helper()
	p := filepath.Join(s.dir, "chassis.log")
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var l []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" {
			l = append(l, line)
		}
	}
	return l
}
