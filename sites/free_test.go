package sites

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The addresses FreeAddresses suggests pass the gate: each case adds
// machines at the suggested addresses to the site file and checks it.
func TestFreeAddresses(t *testing.T) {
	other := &Site{Name: "s2", Machines: []Machine{{Name: "o1", MAC: "52:54:00:00:09:01", Role: RoleWorker, IP: netip.MustParseAddr("10.1.0.3")}}}
	tests := map[string]struct {
		edits  []string // old -> new in the site file
		others []*Site
		subnet string // empty: the site's own
		n      int
		want   []string
	}{
		"lowest first, not the gateway": {n: 3, want: []string{"10.1.0.2", "10.1.0.3", "10.1.0.4"}},
		"not the api_vip nor a machine's": {edits: []string{"api_vip: 10.1.0.10", "api_vip: 10.1.0.2", "ip: 10.1.0.11", "ip: 10.1.0.3"},
			n: 2, want: []string{"10.1.0.4", "10.1.0.5"}},
		"not another site's machine's": {others: []*Site{other}, n: 2, want: []string{"10.1.0.2", "10.1.0.4"}},
		"not a DNS server":             {edits: []string{"dns: [10.1.0.1]", "dns: [10.1.0.2]"}, n: 1, want: []string{"10.1.0.3"}},
		"outside the dynamic range": {edits: []string{"start: 10.1.0.100", "start: 10.1.0.2", "end: 10.1.0.199", "end: 10.1.0.9"},
			n: 2, want: []string{"10.1.0.12", "10.1.0.13"}},
		"a relay's subnet, not its gateway nor its range": {
			edits:  []string{"gateway: 10.2.0.1", "gateway: 10.2.0.1\n      range: {start: 10.2.0.2, end: 10.2.0.21}"},
			subnet: "10.2.0.0/24", n: 2, want: []string{"10.2.0.23", "10.2.0.24"}},
		"the last ones before the broadcast": {edits: []string{"start: 10.1.0.100", "start: 10.1.0.2", "end: 10.1.0.199", "end: 10.1.0.249",
			"api_vip: 10.1.0.10", "api_vip: 10.1.0.250", "ip: 10.1.0.11", "ip: 10.1.0.251", "ip: 10.1.0.21", "ip: 10.1.0.252"},
			n: 3, want: []string{"10.1.0.253", "10.1.0.254"}},
		"none left": {edits: []string{"start: 10.1.0.100", "start: 10.1.0.2", "end: 10.1.0.199", "end: 10.1.0.251",
			"api_vip: 10.1.0.10", "api_vip: 10.1.0.252", "ip: 10.1.0.11", "ip: 10.1.0.253", "ip: 10.1.0.21", "ip: 10.1.0.254"},
			n: 1, want: nil},
		"a subnet not the site's": {subnet: "10.9.0.0/24", n: 1, want: nil},
		"none asked":              {n: 0, want: nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			files := baseFiles(tc.edits...)
			cfg, ps := Load(files)
			if len(ps) > 0 {
				t.Fatalf("load: %v", ps)
			}
			others := map[string]*Site{}
			for _, o := range tc.others {
				others[o.Name] = o
			}
			if ps := (Gate{}).Check(context.Background(), cfg, []string{"s1"}, Version{Commit: "abc"}, others); len(ps) > 0 {
				t.Fatalf("the site before: %v", ps)
			}
			s := cfg.Sites["s1"]
			var got []netip.Addr
			if tc.subnet == "" {
				got = FreeAddresses(s, tc.others, tc.n)
			} else {
				got = FreeAddressesIn(s, tc.others, netip.MustParsePrefix(tc.subnet), tc.n)
			}
			var gotS []string
			for _, a := range got {
				gotS = append(gotS, a.String())
			}
			if diff := cmp.Diff(tc.want, gotS); diff != "" {
				t.Errorf("free addresses (-want +got):\n%s", diff)
			}

			// The gate accepts every suggested address on a new machine.
			var entries strings.Builder
			for i, a := range got {
				fmt.Fprintf(&entries, "  - {name: s1-new-%d, mac: \"52:54:00:00:08:%02x\", role: worker, ip: %s}\n", i+1, i+1, a)
			}
			files["sites/s1/site.yaml"] = append(append([]byte(nil), files["sites/s1/site.yaml"]...), entries.String()...)
			cfg, ps = Load(files)
			if len(ps) > 0 {
				t.Fatalf("load with the new machines: %v", ps)
			}
			if ps := (Gate{}).Check(context.Background(), cfg, []string{"s1"}, Version{Commit: "abc"}, others); len(ps) > 0 {
				t.Errorf("the gate rejects the suggested entries:\n%s\n%v", entries.String(), ps)
			}
		})
	}
}

func TestSubnetOf(t *testing.T) {
	cfg, ps := Load(baseFiles())
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	s := cfg.Sites["s1"]
	for addr, want := range map[string]string{"10.1.0.150": "10.1.0.0/24", "10.2.0.7": "10.2.0.0/24", "192.0.2.1": "10.1.0.0/24", "": "10.1.0.0/24"} {
		var a netip.Addr
		if addr != "" {
			a = netip.MustParseAddr(addr)
		}
		if got := SubnetOf(s, a); got.String() != want {
			t.Errorf("SubnetOf(%q) = %s, want %s", addr, got, want)
		}
	}
}
