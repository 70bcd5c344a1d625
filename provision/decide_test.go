package provision

import (
	"testing"

	"github.com/undercloud/undercloud/sites"
)

func TestChooseVersion(t *testing.T) {
	for name, tc := range map[string]struct {
		assigned           string
		onReboot, servable bool
		want               string
		reassign           bool
	}{
		"first boot takes the active version":       {assigned: "", servable: false, want: "v2", reassign: true},
		"assigned the active version":               {assigned: "v2", servable: true, want: "v2"},
		"an older assigned version is kept":         {assigned: "v1", servable: true, want: "v1"},
		"on-reboot takes the active version":        {assigned: "v1", onReboot: true, servable: true, want: "v2", reassign: true},
		"an assigned version that cannot be served": {assigned: "v1", servable: false, want: "v2", reassign: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, reassign := chooseVersion(tc.assigned, "v2", tc.onReboot, tc.servable)
			if got != tc.want || reassign != tc.reassign {
				t.Errorf("chooseVersion(%q, v2, %v, %v) = %q, %v; want %q, %v",
					tc.assigned, tc.onReboot, tc.servable, got, reassign, tc.want, tc.reassign)
			}
		})
	}
}

func TestInstallNeeded(t *testing.T) {
	for name, tc := range map[string]struct {
		pending bool
		booted  bool
		want    bool
	}{
		"never booted: first install":            {booted: false, want: true},
		"installed, nothing pending: local disk": {booted: true, want: false},
		"a rebuild pending: install again":       {pending: true, booted: true, want: true},
	} {
		if got := installNeeded(tc.pending, tc.booted); got != tc.want {
			t.Errorf("%s: installNeeded(%v, %v) = %v, want %v", name, tc.pending, tc.booted, got, tc.want)
		}
	}
}

func TestBootstrapped(t *testing.T) {
	m1, m2, m3 := sites.Machine{MAC: "m1"}, sites.Machine{MAC: "m2"}, sites.Machine{MAC: "m3"}
	for name, tc := range map[string]struct {
		masters []sites.Machine
		booted  map[sites.MAC]string
		want    bool
	}{
		"no masters: nothing to bootstrap":   {masters: nil, want: false},
		"one master of three never booted":   {masters: []sites.Machine{m1, m2, m3}, booted: map[sites.MAC]string{"m1": "v1", "m2": "v1"}, want: false},
		"every master booted once":           {masters: []sites.Machine{m1, m2, m3}, booted: map[sites.MAC]string{"m1": "v1", "m2": "v2", "m3": "v1"}, want: true},
		"the only master booted":             {masters: []sites.Machine{m1}, booted: map[sites.MAC]string{"m1": "v1"}, want: true},
		"the only master has not booted yet": {masters: []sites.Machine{m1}, booted: map[sites.MAC]string{}, want: false},
	} {
		hasBooted := func(mac sites.MAC) bool { return tc.booted[mac] != "" }
		if got := bootstrapped(tc.masters, hasBooted); got != tc.want {
			t.Errorf("%s: bootstrapped = %v, want %v", name, got, tc.want)
		}
	}
}

func TestChooseMirror(t *testing.T) {
	mirrors := []sites.Mirror{
		{URL: "http://10.99.1.2:8081", Select: "rack=r1"},
		{URL: "http://10.99.2.2:8081", Select: "rack=r2"},
		{URL: "http://10.99.9.2:8081", Select: "rack=r1,role=worker"}, // never chosen: r1 takes them first
		{URL: "http://bad.example", Select: "rack"},                   // the gate refuses it; it matches nothing
		{URL: "http://10.99.3.2:8081", Select: "role=master"},
	}
	r1 := map[string]string{"rack": "r1"}
	for name, tc := range map[string]struct {
		mirrors []sites.Mirror
		m       sites.Machine
		want    string
	}{
		"no mirrors: the server":       {nil, sites.Machine{Name: "w1", Labels: r1}, ""},
		"rack r1":                      {mirrors, sites.Machine{Name: "w1", Role: sites.RoleWorker, Labels: r1}, "http://10.99.1.2:8081"},
		"rack r2":                      {mirrors, sites.Machine{Name: "w2", Labels: map[string]string{"rack": "r2"}}, "http://10.99.2.2:8081"},
		"first match wins":             {mirrors, sites.Machine{Name: "m1", Role: sites.RoleMaster, Labels: r1}, "http://10.99.1.2:8081"},
		"by role":                      {mirrors, sites.Machine{Name: "m9", Role: sites.RoleMaster}, "http://10.99.3.2:8081"},
		"no label matches: the server": {mirrors, sites.Machine{Name: "w3", Role: sites.RoleWorker, Labels: map[string]string{"rack": "r3"}}, ""},
		"unknown machine: the server":  {mirrors, sites.Machine{}, ""},
		"unknown machine, catch-all": {
			append([]sites.Mirror{{URL: "http://10.99.1.2:8081", Select: "rack=r1"}}, sites.Mirror{URL: "http://all.example"}),
			sites.Machine{}, "http://all.example"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := chooseMirror(tc.mirrors, tc.m); got != tc.want {
				t.Errorf("chooseMirror(%s) = %q, want %q", tc.m.Name, got, tc.want)
			}
		})
	}
}
