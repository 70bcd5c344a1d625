package testvm_test

import (
	"strings"
	"testing"
	"time"
)

// TestBrowser drives headless Chromium through the web UI of a server whose
// lab site was booted by real VMs: log in with a token, open the machines
// table and a machine's boot timeline, press Rebuild and watch the machine's
// rebuild and state change until it is done. Every page is saved as a
// screenshot in the test's artifact directory (go test -artifacts).
func TestBrowser(t *testing.T) {
	f := newFleet(t)
	shots := t.ArtifactDir()
	d := startBrowser(t, f.lab)
	base := f.srv.opURL() // the server's self-signed certificate: see startBrowser

	// Log in: everything else redirects to the login page first.
	d.open(base + "/machines")
	if !strings.Contains(d.url(), "/login") {
		t.Fatalf("without a session /machines went to %s, want the login page", d.url())
	}
	d.screenshot(shots, "01-login")
	d.typeInto("#token", operatorToken)
	d.click("#login-submit")
	waitFor(t, 10*time.Second, "the machines table after login", func() bool { return d.count("#machines") == 1 })

	// The machines table: the three lab machines, provisioned.
	for _, m := range labMachines {
		row := `#machines tr[data-mac="` + m.mac + `"]`
		if d.count(row) != 1 {
			t.Fatalf("machines table has no row for %s (%s)", m.name, m.mac)
		}
		if txt := d.text(row); !strings.Contains(txt, m.name) || !strings.Contains(txt, "provisioned") || !strings.Contains(txt, m.ip) {
			t.Errorf("row of %s = %q, want its name, IP and state provisioned", m.name, txt)
		}
	}
	d.screenshot(shots, "02-machines")

	// A machine's page: spec, lease and its boot timeline.
	d.open(base + "/machines/lab/lab-w2")
	if got := d.text("#machine-state"); got != "provisioned" {
		t.Fatalf("lab-w2's state = %q, want provisioned", got)
	}
	timeline := d.text("#boots")
	for _, step := range []string{"dhcp-discover", "dhcp-ack", "ipxe-script", "artifact", "ignition", "booted"} {
		if !strings.Contains(timeline, step) {
			t.Errorf("lab-w2's timeline lacks %s:\n%s", step, timeline)
		}
	}
	d.screenshot(shots, "03-machine-timeline")

	// Press Rebuild: the rebuild appears and moves through its states until
	// the machine reports back booted.
	d.click("#rebuild")
	seen := map[string]bool{}
	waitFor(t, 3*time.Minute, "lab-w2's rebuild to be done", func() bool {
		d.open(base + "/machines/lab/lab-w2")
		if d.count("#rebuilds tr.rebuild") == 0 {
			return false
		}
		state := d.attr("#rebuilds tr.rebuild", "data-state")
		if !seen[state] {
			seen[state] = true
			d.screenshot(shots, "04-rebuild-"+state)
		}
		seen["machine:"+d.text("#machine-state")] = true
		return state == "done"
	})
	if !seen["machine:booting"] {
		t.Errorf("the machine page never showed lab-w2 booting during its rebuild (saw %v)", seen)
	}
	if got := d.text("#machine-state"); got != "provisioned" {
		t.Errorf("after the rebuild lab-w2's state = %q, want provisioned", got)
	}
	d.screenshot(shots, "05-machine-rebuilt")

	// The other pages an operator looks at.
	for _, p := range []struct{ path, name, want string }{
		{"/", "06-overview", "lab"},
		{"/sites/lab", "07-site", "v1"},
		{"/rollouts", "08-rollouts", "lab"},
		{"/discovered", "09-discovered", ""},
		{"/query?example=0", "10-query", ""},
		{"/audit", "11-audit", "rebuild"},
	} {
		d.open(base + p.path)
		if body := d.text("body"); !strings.Contains(body, p.want) {
			t.Errorf("%s lacks %q", p.path, p.want)
		}
		d.screenshot(shots, p.name)
	}
}
