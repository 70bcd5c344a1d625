package provision

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

func TestAllowedSource(t *testing.T) {
	const mac, other = sites.MAC("52:54:00:00:00:01"), sites.MAC("52:54:00:00:00:02")
	ip := netip.MustParseAddr
	reserved, lease, last := ip("10.99.0.21"), ip("10.97.0.120"), ip("10.99.0.77")
	for name, tc := range map[string]struct {
		from netip.Addr
		a    addresses
		want bool
	}{
		"its reservation":                   {from: reserved, a: addresses{Reserved: reserved}, want: true},
		"its reservation, IPv4 in IPv6":     {from: ip("::ffff:10.99.0.21"), a: addresses{Reserved: reserved}, want: true},
		"its lease (a relayed machine too)": {from: lease, a: addresses{Reserved: reserved, Lease: lease}, want: true},
		"its lease, no reservation":         {from: lease, a: addresses{Lease: lease}, want: true},
		"anyone else":                       {from: ip("10.99.0.66"), a: addresses{Reserved: reserved, Lease: lease}},
		"the server itself":                 {from: ip("127.0.0.1"), a: addresses{Reserved: reserved}},
		"no address":                        {from: netip.Addr{}, a: addresses{}},
		"nothing known of the machine":      {from: ip("10.99.0.66")},
		"authoritative: its last address is not enough": {
			from: last, a: addresses{Reserved: reserved, LastIP: last}},
		"authoritative: the neighbour table is not asked": {
			from: ip("10.99.0.66"), a: addresses{Reserved: reserved, Neighbour: mac}},
		"proxy: the address its traffic showed": {from: last, a: addresses{Proxy: true, LastIP: last}, want: true},
		"proxy: its neighbour entry":            {from: ip("10.99.0.88"), a: addresses{Proxy: true, Neighbour: mac}, want: true},
		"proxy: another machine's neighbour entry": {
			from: ip("10.99.0.88"), a: addresses{Proxy: true, LastIP: last, Neighbour: other}},
		"proxy: its reservation": {from: reserved, a: addresses{Proxy: true, Reserved: reserved}, want: true},
		"proxy: anyone else":     {from: ip("10.99.0.66"), a: addresses{Proxy: true, Reserved: reserved, LastIP: last}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := allowedSource(mac, tc.from, tc.a); got != tc.want {
				t.Errorf("allowedSource(%s, %+v) = %v, want %v", tc.from, tc.a, got, tc.want)
			}
		})
	}
}

func TestARPLookup(t *testing.T) {
	const table = `IP address       HW type     Flags       HW address            Mask     Device
10.99.0.88       0x1         0x2         52:54:00:AB:CD:EF     *        br0
10.99.0.89       0x1         0x0         00:00:00:00:00:00     *        br0
10.99.0.90       0x1         0x6         52:54:00:00:00:90     *        br0
`
	for ip, want := range map[string]sites.MAC{
		"10.99.0.88": "52:54:00:ab:cd:ef", // canonical
		"10.99.0.89": "",                  // incomplete: no MAC known
		"10.99.0.90": "52:54:00:00:00:90", // complete and permanent
		"10.99.0.91": "",
	} {
		got, ok := arpLookup(strings.NewReader(table), netip.MustParseAddr(ip))
		if got != want || ok != (want != "") {
			t.Errorf("arpLookup(%s) = %q, %v; want %q", ip, got, ok, want)
		}
	}
}

// fakeNeighbours is a fixed neighbour table.
type fakeNeighbours map[netip.Addr]sites.MAC

func (f fakeNeighbours) NeighbourMAC(ip netip.Addr) (sites.MAC, bool) {
	m, ok := f[ip]
	return m, ok
}

// Service.Allowed over a real inventory: a machine's reservation and its
// active lease are its own; in proxy mode, the address its traffic showed
// and its neighbour entry too; nothing else.
func TestServiceAllowed(t *testing.T) {
	c := newCore(t)
	ip := netip.MustParseAddr
	c.svc.Neighbours = fakeNeighbours{ip("10.99.0.88"): c.mac("lab-w1"), ip("10.99.0.89"): c.mac("lab-w2")}
	c.activate(c.v1)
	w1 := c.mac("lab-w1")
	reserved := c.v1.Site.Machine("lab-w1").IP
	unknown := sites.MAC("52:54:00:aa:bb:cc")
	allowed := func(mac sites.MAC, from string) bool { return c.svc.Allowed(c.ctx, string(mac), ip(from)) }

	if !allowed(w1, reserved.String()) {
		t.Errorf("lab-w1 from its reservation %s: refused", reserved)
	}
	for _, from := range []string{"10.99.0.66", "127.0.0.1", c.v1.Site.Machine("lab-w2").IP.String(), "10.99.0.88"} {
		if allowed(w1, from) {
			t.Errorf("lab-w1 from %s: allowed", from)
		}
	}

	// A lease: its address while the lease is bound and active.
	if allowed(unknown, "10.99.0.150") {
		t.Error("a MAC without a lease: allowed")
	}
	if _, err := c.db.Bind(c.ctx, inventory.LeaseRequest{MAC: unknown, IP: ip("10.99.0.150"), Site: "lab", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if !allowed(unknown, "10.99.0.150") || allowed(unknown, "10.99.0.151") {
		t.Error("leased MAC: want its lease address allowed and no other")
	}
	c.clk.Advance(time.Hour + time.Second)
	if allowed(unknown, "10.99.0.150") {
		t.Error("an expired lease's address: allowed")
	}
	if _, err := c.db.Bind(c.ctx, inventory.LeaseRequest{MAC: unknown, IP: ip("10.99.0.150"), Site: "lab", Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := c.db.Release(c.ctx, unknown, ip("10.99.0.150")); err != nil {
		t.Fatal(err)
	}
	if allowed(unknown, "10.99.0.150") {
		t.Error("a released lease's address: allowed")
	}

	// The address the network last showed for lab-w1.
	if err := c.db.Observe(c.ctx, inventory.Observation{MAC: w1, Site: "lab", IP: ip("10.99.0.77")}); err != nil {
		t.Fatal(err)
	}
	if allowed(w1, "10.99.0.77") {
		t.Error("authoritative mode: lab-w1 from its last address (not its lease or reservation): allowed")
	}
	c.activate(withSite(c.v1, func(s *sites.Site, _ *sites.Image) { s.Network.DHCP.Mode, s.Network.DHCP.Range = sites.DHCPProxy, nil }))
	for from, want := range map[string]bool{
		reserved.String(): true,  // its reservation still
		"10.99.0.77":      true,  // where its traffic showed it
		"10.99.0.88":      true,  // the kernel's neighbour entry names it
		"10.99.0.89":      false, // lab-w2's neighbour entry
		"10.99.0.66":      false,
	} {
		if got := allowed(w1, from); got != want {
			t.Errorf("proxy mode: lab-w1 from %s: allowed %v, want %v", from, got, want)
		}
	}
}

// The rule end to end, through the real boot handler over real sockets:
// loopback is 127.0.0.0/8, so a client bound to 127.0.0.21 plays lab-w1 at
// the address it leased and one bound to 127.0.0.22 a stranger on the
// network.
func TestSourcesThroughHTTP(t *testing.T) {
	c := newCore(t)
	c.svc.Neighbours = fakeNeighbours{}
	c.activate(c.v1)
	own, stranger := netip.MustParseAddr("127.0.0.21"), netip.MustParseAddr("127.0.0.22")
	if _, err := c.db.Bind(c.ctx, inventory.LeaseRequest{MAC: c.mac("lab-w1"), IP: own, Site: "lab"}); err != nil {
		t.Fatal(err)
	}
	w1 := string(c.mac("lab-w1"))
	h := &pxe.HTTP{
		Targets: c.svc, Configs: c.svc, Sources: c.svc, Callbacks: c.svc, Recorder: c.svc,
		Artifacts: &images.Store{Dir: t.TempDir()}, Tokens: &pxe.Tokens{Key: []byte("test key of thirty-two bytes....")},
	}
	handler, err := h.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	from := func(ip netip.Addr) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip.AsSlice()}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	do := func(cl *http.Client, method, url string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, script := do(from(stranger), "GET", srv.URL+"/ipxe?mac="+w1)
	if code != 200 || strings.Contains(script, "token=") || !strings.Contains(script, "not its own") {
		t.Fatalf("script for a stranger: %d\n%s", code, script)
	}
	if v := c.assigned("lab-w1"); v != "" {
		t.Errorf("a stranger's request assigned lab-w1 version %s", v)
	}
	code, script = do(from(own), "GET", srv.URL+"/ipxe?mac="+w1)
	if code != 200 || !strings.Contains(script, "token=") {
		t.Fatalf("script for lab-w1 from its lease: %d\n%s", code, script)
	}
	var ign, booted string
	for _, f := range strings.Fields(script) {
		if v, ok := strings.CutPrefix(f, pxe.DefaultIgnitionArg+"="); ok {
			// The script passes no callback URL any more (the config
			// carries it): the boot's booted URL has the config URL's query.
			ign, booted = v, strings.Replace(v, "/ignition?", "/booted?", 1)
		}
	}
	if code, _ := do(from(stranger), "GET", ign); code != 403 {
		t.Errorf("config with lab-w1's token from a stranger: %d, want 403", code)
	}
	if code, _ := do(from(stranger), "POST", booted); code != 403 {
		t.Errorf("booted with lab-w1's token from a stranger: %d, want 403", code)
	}
	if code, cfg := do(from(own), "GET", ign); code != 200 || !strings.Contains(cfg, `"ignition"`) {
		t.Errorf("config from lab-w1's lease: %d", code)
	}
	if code, _ := do(from(own), "POST", booted); code != 204 {
		t.Errorf("booted from lab-w1's lease: %d, want 204", code)
	}
	// The ignition handler records its event after the answer, so the
	// client may be through before it is recorded: wait for the six.
	want := []string{"booted", "callback-denied", "ignition", "ignition-denied", "ipxe-denied", "ipxe-script"}
	var kinds []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := c.db.Flush(c.ctx); err != nil {
			t.Fatal(err)
		}
		evs, err := c.db.Events(c.ctx, sites.MAC(w1), 100)
		if err != nil {
			t.Fatal(err)
		}
		kinds = kinds[:0]
		for _, ev := range evs {
			kinds = append(kinds, string(ev.Kind))
		}
		slices.Sort(kinds)
		if len(kinds) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("lab-w1's events (-want +got):\n%s", diff)
	}
}
