package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"

	"github.com/undercloud/undercloud/dhcp"
	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

var _ dhcp.Recorder = (*DHCPEvents)(nil)

// DHCPEvents records DHCP events in the inventory. Record must not block the
// packet path: the inventory buffers events and commits them in batches, and
// what a packet tells about a machine's firmware is written from a
// goroutine, once per MAC and change.
type DHCPEvents struct {
	db  *inventory.DB
	log *slog.Logger

	mu   sync.Mutex
	seen map[sites.MAC]inventory.Observation
	obs  chan inventory.Observation
}

// NewDHCPEvents returns a recorder of DHCP events into db; run it with Run.
func NewDHCPEvents(db *inventory.DB, log *slog.Logger) *DHCPEvents {
	return &DHCPEvents{db: db, log: log, seen: map[sites.MAC]inventory.Observation{}, obs: make(chan inventory.Observation, 1024)}
}

func (e *DHCPEvents) Record(ev dhcp.Event) {
	kind := ev.Kind.Event()
	if kind == "" || len(ev.MAC) == 0 {
		return
	}
	mac := sites.MAC(ev.MAC.String())
	// Built by hand, not through a map and encoding/json: this runs for
	// every packet of a datacenter bring-up.
	d := fmt.Appendf(make([]byte, 0, 160), `{"xid":"0x%08x"`, ev.XID)
	afterXID := len(d)
	for _, kv := range [...][2]string{{"file", ev.File}, {"firmware", firmwareName(ev.Boot.Firmware)},
		{"relay", addrString(ev.Relay)}, {"reason", ev.Reason}} {
		if kv[1] != "" {
			d = appendJSONField(d, kv[0], kv[1])
		}
	}
	if ev.Proxy {
		d = append(d, `,"proxy":true`...)
	}
	d = append(d, '}')
	detail := string(d)
	ip := ev.IP
	if kind == event.DHCPDiscover || kind == event.DHCPRequest || kind == event.DHCPNak {
		ip = netip.Addr{} // not the machine's address (yet)
	}
	if err := e.db.Record(context.Background(), inventory.Event{
		At: ev.Time, MAC: mac, Site: ev.Site, Kind: kind, IP: ip, Detail: detail,
		// A client doing DHCP again and again says the same but for the
		// xid: the inventory stores such repeats once every FoldWindow.
		Repeat: detail[afterXID:],
	}); err != nil {
		e.log.Warn("record DHCP event", "mac", mac, "err", err)
	}
	if kind == event.DHCPDiscover || kind == event.DHCPRequest {
		e.observe(mac, ev)
	}
}

func firmwareName(f dhcp.Firmware) string {
	if f == dhcp.FirmwareNone {
		return ""
	}
	return f.String()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// appendJSONField appends ,"key":"value" with value JSON-quoted.
func appendJSONField(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if isPlainASCII(value) {
		b = append(b, '"')
		b = append(b, value...)
		return append(b, '"')
	}
	v, _ := json.Marshal(value) // rare: a value that needs escaping
	return append(b, v...)
}

// isPlainASCII reports whether s needs no JSON escaping.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// observe queues what the packet says about the machine's firmware when it
// is new for this MAC; it drops rather than blocks when the queue is full.
func (e *DHCPEvents) observe(mac sites.MAC, ev dhcp.Event) {
	o := inventory.Observation{MAC: mac, Site: ev.Site, UUID: ev.Boot.UUID, VendorClass: ev.Boot.VendorClass}
	if ev.Boot.HasArch {
		o.Arch = strconv.Itoa(int(ev.Boot.Arch))
	}
	e.mu.Lock()
	prev, ok := e.seen[mac]
	if ok && prev == o {
		e.mu.Unlock()
		return
	}
	if len(e.seen) > 100000 { // bound memory; a re-observation is harmless
		clear(e.seen)
	}
	e.seen[mac] = o
	e.mu.Unlock()
	select {
	case e.obs <- o:
	default:
	}
}

// Run writes observations until ctx ends.
func (e *DHCPEvents) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-e.obs:
			if err := e.db.Observe(ctx, o); err != nil && ctx.Err() == nil {
				e.log.Warn("record machine identity", "mac", o.MAC, "err", err)
			}
		}
	}
}
