package web

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/sites"
)

// MachineView is one row of the machines table.
type MachineView struct {
	MAC     sites.MAC       `json:"mac"`
	Site    string          `json:"site"`
	Name    string          `json:"name"`
	Role    sites.Role      `json:"role,omitempty"`
	State   inventory.State `json:"state"`
	IP      string          `json:"ip,omitempty"`
	Image   string          `json:"image,omitempty"`
	Version *VersionRef     `json:"version,omitempty"`         // what it last booted
	Desired *VersionRef     `json:"desired_version,omitempty"` // its site's active version
	// Assigned is the version it boots: set at its first boot, moved only
	// by a rebuild or a rollout (or every boot, under upgrade: on-reboot).
	Assigned    *VersionRef `json:"assigned_version,omitempty"`
	Outdated    bool        `json:"outdated"`
	Discovered  bool        `json:"discovered"`
	UUID        string      `json:"uuid,omitempty"`
	Serial      string      `json:"serial,omitempty"`
	Arch        string      `json:"arch,omitempty"`
	VendorClass string      `json:"vendor_class,omitempty"`
	FirstSeen   *time.Time  `json:"first_seen,omitempty"`
	LastSeen    *time.Time  `json:"last_seen,omitempty"`
	LastEvent   *EventView  `json:"last_event,omitempty"`
}

// Path is the machine's page and API path below /machines/: site/name, or
// site/MAC for a machine no config declares ("-" for no site).
func (m MachineView) Path() string {
	site, name := m.Site, m.Name
	if site == "" {
		site = "-"
	}
	if m.Discovered || name == "" {
		name = string(m.MAC)
	}
	return pathEscape(site) + "/" + pathEscape(name)
}

// machineFilter reads the machines table's filters from the query string.
func machineFilter(c echo.Context) (inventory.MachineFilter, error) {
	f := inventory.MachineFilter{Site: c.QueryParam("site"), Role: sites.Role(c.QueryParam("role")),
		State: inventory.State(c.QueryParam("state")), Version: strings.TrimSpace(c.QueryParam("version"))}
	if f.Role != "" && !f.Role.Valid() {
		return f, kindf(ErrBadRequest, "role=%q: want %s or %s", f.Role, sites.RoleMaster, sites.RoleWorker)
	}
	if f.State != "" && !f.State.Valid() {
		return f, kindf(ErrBadRequest, "state=%q: want one of %s", f.State, joinStates())
	}
	var err error
	if f.Limit, f.After, err = pageParams(c); err != nil {
		return f, err
	}
	switch strings.ToLower(c.QueryParam("outdated")) {
	case "", "0", "false", "no", "off":
	case "1", "true", "yes", "on":
		f.Outdated = true
	default:
		return f, kindf(ErrBadRequest, "outdated=%q: want true or false", c.QueryParam("outdated"))
	}
	return f, nil
}

func joinStates() string {
	var ss []string
	for _, s := range inventory.States() {
		ss = append(ss, string(s))
	}
	return strings.Join(ss, ", ")
}

// pageParams reads a listing's page: limit (inventory.DefaultPage if
// absent, at most inventory.MaxPage) and cursor (the next of the page
// before).
func pageParams(c echo.Context) (limit int, cursor string, err error) {
	if limit, err = intParam(c, "limit", inventory.DefaultPage); err != nil {
		return 0, "", err
	}
	return min(max(limit, 1), inventory.MaxPage), c.QueryParam("cursor"), nil
}

// nextLink is the URL of the page after this one: the request's own with
// cursor set to next; empty when there is none.
func nextLink(c echo.Context, next string) string {
	if next == "" {
		return ""
	}
	u := *c.Request().URL
	q := u.Query()
	q.Set("cursor", next)
	u.RawQuery = q.Encode()
	return u.RequestURI()
}

// machineViews lists a page of the machines f selects, with their last
// event, and the cursor of the next page (empty after the last).
func (s *server) machineViews(ctx context.Context, f inventory.MachineFilter) ([]MachineView, string, error) {
	book := newVersionBook(s.DB)
	if f.Version != "" {
		var names []string
		for _, st := range s.Sites.Status() {
			names = append(names, st.Site)
		}
		v, err := book.resolve(ctx, f.Site, names, f.Version)
		if err != nil {
			return nil, "", err
		}
		f.Version = v
	}
	ms, next, err := s.DB.MachinePage(ctx, f)
	if errors.Is(err, inventory.ErrBadCursor) {
		return nil, "", kindf(ErrBadRequest, "cursor=%q: not the next of a page; start again without it", f.After)
	}
	if err != nil {
		return nil, "", err
	}
	out := make([]MachineView, 0, len(ms))
	for _, m := range ms {
		v, err := s.machineView(ctx, book, m)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

// machineView makes the row of m, with its last event: one indexed lookup
// per machine, cheaper than any grouping over the whole event log.
func (s *server) machineView(ctx context.Context, book *versionBook, m inventory.Machine) (MachineView, error) {
	v := MachineView{MAC: m.MAC, Site: m.Site, Name: m.Name, Role: m.Role, State: m.State, Image: m.Image,
		Outdated: m.Outdated(), Discovered: m.Discovered, UUID: m.UUID, Serial: m.Serial, Arch: m.Arch,
		VendorClass: m.VendorClass, FirstSeen: timePtr(m.FirstSeen), LastSeen: timePtr(m.LastSeen)}
	if m.LastIP.IsValid() {
		v.IP = m.LastIP.String()
	}
	var err error
	if v.Version, err = book.ref(ctx, m.Site, m.CurrentVersion); err != nil {
		return v, err
	}
	if v.Desired, err = book.ref(ctx, m.Site, m.DesiredVersion); err != nil {
		return v, err
	}
	if v.Assigned, err = book.ref(ctx, m.Site, m.AssignedVersion); err != nil {
		return v, err
	}
	evs, err := s.DB.Events(ctx, m.MAC, 1)
	if err != nil {
		return v, err
	}
	if len(evs) > 0 {
		ev := eventView(evs[0])
		ev.VersionRef = book.named(ctx, m.Site, ev.Version)
		v.LastEvent = &ev
	}
	return v, nil
}

// MachineDetail is everything about one machine: the machine page and
// GET /api/v1/machines/{site}/{name}.
type MachineDetail struct {
	Machine MachineView `json:"machine"`
	// Spec is what the site's active config declares; SpecNote says why
	// there is none.
	Spec     *SpecView     `json:"spec,omitempty"`
	SpecNote string        `json:"spec_note,omitempty"`
	Lease    *LeaseView    `json:"lease,omitempty"`
	Boots    []BootView    `json:"boots"` // newest first
	Rebuilds []RebuildView `json:"rebuilds"`
	// RebuildsNote says why there is no rebuild history to show.
	RebuildsNote string `json:"rebuilds_note,omitempty"`
}

// SpecView is a machine as its site's config declares it. The BMC's
// credentials are never shown, not even their name.
type SpecView struct {
	Name    string     `json:"name"`
	Role    sites.Role `json:"role"`
	IP      string     `json:"ip"`
	Image   string     `json:"image"`
	Version VersionRef `json:"version"`
	BMC     *BMCView   `json:"bmc,omitempty"`
}

// BMCView is how the server power-cycles a machine.
type BMCView struct {
	Driver  string `json:"driver"`
	Address string `json:"address"`
}

// LeaseView is a machine's DHCP lease.
type LeaseView struct {
	IP       string    `json:"ip"`
	State    string    `json:"state"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
	Updated  time.Time `json:"updated"`
	Active   bool      `json:"active"`
}

// BootView is one boot of a machine, its steps oldest first.
type BootView struct {
	BootID  string      `json:"boot_id,omitempty"`
	Start   time.Time   `json:"start"`
	End     time.Time   `json:"end"`
	Seconds float64     `json:"duration_seconds"`
	Version *VersionRef `json:"version,omitempty"`
	Booted  bool        `json:"booted"`
	Failed  bool        `json:"failed"`
	Steps   []StepView  `json:"steps"`
}

// Duration is the boot's length, for templates.
func (b BootView) Duration() time.Duration { return time.Duration(b.Seconds * float64(time.Second)) }

// StepView is one event of a boot with the time since the step before.
type StepView struct {
	EventView
	Since float64 `json:"since_seconds"`
}

// SinceDuration is Since, for templates.
func (s StepView) SinceDuration() time.Duration { return time.Duration(s.Since * float64(time.Second)) }

// findMachine returns the machine a /machines/{site}/{name} path names:
// declared under name in site, or else the machine with MAC name (site
// "-" standing for none).
func (s *server) findMachine(ctx context.Context, site, name string) (inventory.Machine, error) {
	m, err := s.DB.MachineByName(ctx, site, name)
	if err == nil || !errors.Is(err, inventory.ErrNotFound) {
		return m, err
	}
	if mac, perr := sites.ParseMAC(name); perr == nil {
		m, err = s.DB.Machine(ctx, mac)
		if err == nil && (m.Site == site || (site == "-" && m.Site == "")) {
			return m, nil
		}
		if err != nil && !errors.Is(err, inventory.ErrNotFound) {
			return m, err
		}
	}
	return m, kindf(ErrNotFound, "no machine %q in site %q", name, site)
}

// machineDetail gathers everything about one machine.
func (s *server) machineDetail(ctx context.Context, site, name string) (MachineDetail, error) {
	m, err := s.findMachine(ctx, site, name)
	if err != nil {
		return MachineDetail{}, err
	}
	book := newVersionBook(s.DB)
	d := MachineDetail{Boots: []BootView{}, Rebuilds: []RebuildView{}}
	if d.Machine, err = s.machineView(ctx, book, m); err != nil {
		return d, err
	}
	d.Spec, d.SpecNote = s.spec(m)
	if l, err := s.DB.LeaseByMAC(ctx, m.MAC); err == nil {
		d.Lease = &LeaseView{IP: l.IP.String(), State: string(l.State), Hostname: l.Hostname,
			Expires: l.Expires, Updated: l.Updated, Active: l.Active(s.now())}
	} else if !errors.Is(err, inventory.ErrNotFound) {
		return d, err
	}
	boots, err := s.DB.Boots(ctx, m.MAC, 20)
	if err != nil {
		return d, err
	}
	for _, b := range boots {
		bv := BootView{BootID: b.BootID, Start: b.Start, End: b.End, Seconds: b.Duration().Seconds(),
			Booted: b.Booted, Failed: b.Failed, Steps: make([]StepView, 0, len(b.Steps))}
		if bv.Version, err = book.ref(ctx, m.Site, b.Version); err != nil {
			return d, err
		}
		for _, st := range b.Steps {
			ev := eventView(st.Event)
			ev.VersionRef = book.named(ctx, m.Site, ev.Version)
			bv.Steps = append(bv.Steps, StepView{EventView: ev, Since: st.Since.Seconds()})
		}
		d.Boots = append(d.Boots, bv)
	}
	if s.Rebuilds == nil {
		d.RebuildsNote = errNoRebuilds.Error()
		return d, nil
	}
	rbs, err := s.Rebuilds.MachineRebuilds(ctx, m.MAC)
	if err != nil {
		return d, fmt.Errorf("rebuilds of %s: %w", m.MAC, err)
	}
	for i := range rbs {
		rbs[i].VersionRef = book.named(ctx, m.Site, rbs[i].Version)
	}
	if rbs != nil {
		d.Rebuilds = rbs
	}
	return d, nil
}

// spec returns what the site's active config declares of m.
func (s *server) spec(m inventory.Machine) (*SpecView, string) {
	if m.Discovered {
		return nil, "No site config declares this machine: add it to its site.yaml (see Discovered)."
	}
	rel := s.Sites.Release(m.Site)
	if rel == nil {
		return nil, fmt.Sprintf("Site %s has no active version.", m.Site)
	}
	sm := rel.Site.MachineByMAC(m.MAC)
	if sm == nil {
		return nil, fmt.Sprintf("The active version of site %s does not declare this machine.", m.Site)
	}
	sv := &SpecView{Name: sm.Name, Role: sm.Role, IP: sm.IP.String(), Image: rel.Site.Image, Version: newVersionRef(rel.Version)}
	if rel.Image != nil {
		sv.Image = rel.Image.Name
	}
	if sm.BMC != nil {
		sv.BMC = &BMCView{Driver: sm.BMC.Driver, Address: redact(sm.BMC.Address)}
	}
	return sv, ""
}

// archNames are the client architectures of DHCP option 93 (RFC 4578,
// IANA "Processor Architecture Types") a PXE boot shows.
var archNames = map[string]string{
	"0": "x86 BIOS", "6": "x86 UEFI", "7": "x86-64 UEFI", "9": "x86-64 UEFI", "10": "ARM32 UEFI",
	"11": "ARM64 UEFI", "15": "x86 UEFI HTTP", "16": "x86-64 UEFI HTTP", "19": "ARM64 UEFI HTTP",
}

// archName says what an option 93 value means, keeping the number.
func archName(arch string) string {
	if n, ok := archNames[arch]; ok {
		return n + " (" + arch + ")"
	}
	return arch
}
