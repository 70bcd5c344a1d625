package web

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// Two more unknown machines of lab: one seen behind its relay, one that
// never got an address.
const (
	macRelayed = sites.MAC("52:54:00:99:00:98")
	macNoIP    = sites.MAC("52:54:00:99:00:97")
)

func patchPath(site string, macs ...sites.MAC) string {
	q := url.Values{}
	if site != "" {
		q.Set("site", site)
	}
	for _, m := range macs {
		q.Add("mac", string(m))
	}
	return "/api/v1/discovered/patch?" + q.Encode()
}

// The patch for selected machines gives each a free address of the subnet
// it was seen on, and the gate accepts the site with the patch applied.
func TestDiscoveredPatch(t *testing.T) {
	f := newFixture(t, nil)
	f.record(
		inventory.Event{MAC: macRelayed, Site: "lab", Kind: event.DHCPAck, IP: netip.MustParseAddr("10.97.0.150"), At: f.clock.Now()},
		inventory.Event{MAC: macNoIP, Site: "lab", Kind: event.DHCPDiscover, At: f.clock.Now()},
	)
	var p SitePatch
	f.getJSON(patchPath("", macUnknown, macRelayed, macNoIP, macUnknown), &p)
	want := []PatchMachine{
		{Name: "lab-new-1", MAC: macUnknown, Role: sites.RoleWorker, IP: "10.99.0.2"},
		{Name: "lab-new-2", MAC: macRelayed, Role: sites.RoleWorker, IP: "10.97.0.2"}, // the relay's subnet
		{Name: "lab-new-3", MAC: macNoIP, Role: sites.RoleWorker, IP: "10.99.0.3"},
	}
	if diff := cmp.Diff(want, p.Machines); diff != "" {
		t.Errorf("patch machines (-want +got):\n%s", diff)
	}
	if p.Site != "lab" || p.File != "sites/lab/site.yaml" || len(p.NoAddress) != 0 {
		t.Errorf("patch: %+v", p)
	}

	// The YAML, pasted under lab's machines:, passes the gate.
	var entries []struct{ Name, MAC, Role, IP string }
	if err := yaml.Unmarshal([]byte(p.YAML), &entries); err != nil {
		t.Fatalf("patch YAML: %v\n%s", err, p.YAML)
	}
	var added []sites.Machine
	for _, e := range entries {
		mac, err := sites.ParseMAC(e.MAC)
		if err != nil {
			t.Fatal(err)
		}
		ip, err := netip.ParseAddr(e.IP)
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, sites.Machine{Name: e.Name, MAC: mac, Role: sites.Role(e.Role), IP: ip})
	}
	if len(added) != 3 || added[1].IP.String() != "10.97.0.2" || added[1].MAC != macRelayed {
		t.Fatalf("patch YAML decodes to %+v:\n%s", added, p.YAML)
	}
	rel := f.sites.Release("lab")
	lab := *rel.Site
	lab.Machines = append(slices.Clone(lab.Machines), added...)
	cfg := &sites.Config{Sites: map[string]*sites.Site{"lab": &lab}, Images: map[string]*sites.Image{rel.Image.Name: rel.Image}}
	if rel.Discovery != nil {
		cfg.Images[rel.Discovery.Name] = rel.Discovery
	}
	others := map[string]*sites.Site{"second": f.sites.Release("second").Site}
	if ps := (sites.Gate{}).Check(context.Background(), cfg, []string{"lab"}, rel.Version, others); len(ps) > 0 {
		t.Errorf("the gate rejects lab with the patch:\n%v\n%s", ps, p.YAML)
	}

	// The page shows the same patch for the machines ticked.
	b := f.login(viewerSecret)
	resp, body := b.get("/discovered?mac=" + url.QueryEscape(string(macUnknown)) + "&mac=" + url.QueryEscape(string(macRelayed)))
	for _, s := range []string{`id="patch-yaml"`, "sites/lab/site.yaml", "name: lab-new-1", "ip: 10.99.0.2", "name: lab-new-2", "ip: 10.97.0.2",
		`value="52:54:00:99:00:98" aria-label="select 52:54:00:99:00:98" checked`} {
		if !strings.Contains(body, s) {
			t.Errorf("GET /discovered with a selection: %d, no %q in\n%s", resp.StatusCode, s, body)
		}
	}
	if strings.Contains(body, "name: lab-new-3") {
		t.Errorf("the page's patch has a machine not selected")
	}
	// A wrong selection is explained on the page.
	resp, body = b.get("/discovered?mac=" + url.QueryEscape(string(macM1)))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="patch-error"`) || !strings.Contains(body, "already declared, as lab/lab-m1") {
		t.Errorf("GET /discovered with a declared machine: %d\n%s", resp.StatusCode, body)
	}
}

func TestDiscoveredPatchErrors(t *testing.T) {
	f := newFixture(t, nil)
	for name, tc := range map[string]struct {
		path string
		code int
		want string
	}{
		"no machine":       {patchPath("lab"), http.StatusBadRequest, "select the machines to add: one mac=… parameter each"},
		"bad MAC":          {"/api/v1/discovered/patch?mac=52:54", http.StatusBadRequest, `mac=\"52:54\"`},
		"never seen":       {patchPath("", "52:54:00:00:00:01"), http.StatusNotFound, "mac=52:54:00:00:00:01: no machine with this MAC has been seen"},
		"already declared": {patchPath("", macM1), http.StatusConflict, "mac=52:54:00:99:00:11: already declared, as lab/lab-m1"},
		"no such site":     {patchPath("nosite", macUnknown), http.StatusNotFound, `site=\"nosite\": no such site (served: lab, second)`},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := f.call(viewerSecret, http.MethodGet, tc.path, nil)
			if code != tc.code || !strings.Contains(string(body), tc.want) {
				t.Errorf("GET %s: %d %s, want %d with %q", tc.path, code, body, tc.code, tc.want)
			}
		})
	}
	// Added to another site, the machine gets an address of that one.
	var p SitePatch
	f.getJSON(patchPath("second", macUnknown), &p)
	if len(p.Machines) != 1 || p.Machines[0].Name != "second-new-1" || !strings.HasPrefix(p.Machines[0].IP, "172.20.0.") {
		t.Errorf("patch for second: %+v", p)
	}
}

// A subnet without room leaves the entry's address to the operator and
// says why.
func TestReserveNoFreeAddress(t *testing.T) {
	tiny := &sites.Site{Name: "tiny", Network: sites.Network{Subnet: netip.MustParsePrefix("10.5.0.0/29"),
		Gateway: netip.MustParseAddr("10.5.0.1"),
		DHCP:    sites.DHCP{Range: &sites.Range{Start: netip.MustParseAddr("10.5.0.3"), End: netip.MustParseAddr("10.5.0.6")}}},
		Cluster: sites.Cluster{APIVIP: netip.MustParseAddr("10.5.0.2")}}
	plan := addressPlan{sites: map[string]*sites.Site{"tiny": tiny}}
	got := plan.reserve([]addrWant{{site: "tiny"}, {site: "gone"}})
	if got[0].addr.IsValid() || got[0].why != "no free address left in 10.5.0.0/29 outside the dynamic ranges: shrink a range or free an address" {
		t.Errorf("tiny: %+v", got[0])
	}
	if got[1].addr.IsValid() || !strings.Contains(got[1].why, `no active config of site "gone"`) {
		t.Errorf("gone: %+v", got[1])
	}
	if e := entry("tiny-new-1", macUnknown, got[0], ""); !strings.Contains(e, "    ip: CHOOSE  # no free address left in 10.5.0.0/29") {
		t.Errorf("entry:\n%s", e)
	}
}

// An unknown machine told there is nothing to boot shows so on the
// discovered page and in the API.
func TestDiscoveredNothingToBoot(t *testing.T) {
	f := newFixture(t, nil)
	f.record(inventory.Event{MAC: macUnknown, Site: "lab", Kind: event.IPXEScript, IP: netip.MustParseAddr("10.99.0.150"),
		Detail: event.NothingToBoot, At: f.clock.Now()})
	var got struct{ Machines []DiscoveredView }
	f.getJSON("/api/v1/discovered", &got)
	if len(got.Machines) != 1 || got.Machines[0].State != inventory.StateNothingToBoot {
		t.Errorf("discovered: %+v", got.Machines)
	}
	resp, body := f.login(viewerSecret).get("/discovered")
	if want := `<td class="state-cell"><span class="state state-nothing-to-boot">nothing-to-boot</span></td>`; !strings.Contains(body, want) {
		t.Errorf("GET /discovered: %d, no %q in\n%s", resp.StatusCode, want, body)
	}
	var d MachineDetail
	f.getJSON("/api/v1/machines/lab/"+url.PathEscape(string(macUnknown)), &d)
	if d.Machine.State != inventory.StateNothingToBoot {
		t.Errorf("machine state %s, want %s", d.Machine.State, inventory.StateNothingToBoot)
	}
	// Its next boot step, a moment later, makes it booting again.
	f.clock.Advance(time.Second)
	f.record(inventory.Event{MAC: macUnknown, Site: "lab", Kind: event.DHCPDiscover, At: f.clock.Now()})
	f.getJSON("/api/v1/machines/lab/"+url.PathEscape(string(macUnknown)), &d)
	if d.Machine.State != inventory.StateBooting {
		t.Errorf("after a new DHCPDISCOVER: state %s, want %s", d.Machine.State, inventory.StateBooting)
	}
}
