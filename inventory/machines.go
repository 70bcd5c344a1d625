package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// Machine is a physical node as the inventory knows it: what its site
// config declares (name, role, image, desired version) and what the network
// showed (identity, address, the version it booted).
type Machine struct {
	MAC         sites.MAC
	Site        string
	Name        string     // from the site config; kept as history once undeclared
	Role        sites.Role // empty when not declared
	State       State
	UUID        string // SMBIOS UUID
	Serial      string
	Arch        string // DHCP client architecture (option 93), e.g. "0" or "7"
	VendorClass string // DHCP option 60, e.g. PXEClient:Arch:00007:UNDI:003016
	Image       string
	// CurrentVersion is the commit the machine last reported booted on.
	CurrentVersion string
	// DesiredVersion is the commit of its site's active config.
	DesiredVersion string
	// AssignedVersion is the commit the machine boots: its site's active
	// version at its first boot, then whatever a rebuild or a rollout
	// assigned it last. Empty until its first boot.
	AssignedVersion string
	LastIP          netip.Addr
	FirstSeen       time.Time // zero: never seen on the network
	LastSeen        time.Time
	// Discovered is true for a machine in no site config: an unknown MAC
	// that booted, or one removed from its config.
	Discovered bool
}

// Outdated reports whether a declared machine runs another version than its
// site's active one (or has never booted).
func (m Machine) Outdated() bool {
	return !m.Discovered && m.DesiredVersion != "" && m.CurrentVersion != m.DesiredVersion
}

// DeclareMachines makes the machines of rel's config the declared machines
// of its site: it sets their name, role, image and desired version (rel's
// commit) and marks the site's machines missing from rel as discovered. What
// the network showed (state, addresses, current version, first and last
// seen) is never overwritten.
func (db *DB) DeclareMachines(ctx context.Context, rel *sites.Release) error {
	site, version := rel.Site.Name, rel.Version.Commit
	image := rel.Site.Image
	if rel.Image != nil {
		image = rel.Image.Name
	}
	err := db.do(ctx, func(t *tx) error {
		t.db().seen.reset() // rewrites the state and site of many machines
		// Undeclare the whole site first, so that machines swapping names
		// between versions never collide on the unique name.
		if _, err := t.exec(`UPDATE machines SET discovered = 1, role = '', desired_version = '',
			state = CASE state WHEN 'known' THEN 'discovered' ELSE state END
			WHERE site = ? AND discovered = 0`, site); err != nil {
			return err
		}
		for _, m := range rel.Site.Machines {
			if _, err := t.exec(`INSERT INTO machines (mac, site, name, role, state, image, desired_version, discovered)
				VALUES (?, ?, ?, ?, 'known', ?, ?, 0)
				ON CONFLICT (mac) DO UPDATE SET site = excluded.site, name = excluded.name, role = excluded.role,
					image = excluded.image, desired_version = excluded.desired_version, discovered = 0,
					state = CASE WHEN machines.state IN ('discovered', 'nothing-to-boot') THEN 'known' ELSE machines.state END`,
				string(m.MAC), site, m.Name, string(m.Role), image, version); err != nil {
				return fmt.Errorf("machine %s (%s): %w", m.Name, m.MAC, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("declare machines of site %s at %s: %w", site, rel.Version.Short(), err)
	}
	return nil
}

// AssignVersion makes commit the version machine mac boots, if its assigned
// version is still from (so that two boots racing to assign a first version
// assign it once). It reports whether it changed the assignment.
func (db *DB) AssignVersion(ctx context.Context, mac sites.MAC, commit, from string) (bool, error) {
	changed := false
	err := db.do(ctx, func(t *tx) error {
		res, err := t.exec(`UPDATE machines SET assigned_version = ? WHERE mac = ? AND assigned_version = ?`,
			commit, string(mac), from)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		changed = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("assign version %s to machine %s: %w", commit, mac, err)
	}
	return changed, nil
}

// AssignFirstVersion makes commit the version machine mac boots if it has
// none yet (its first boot), without waiting for the write: a power-on
// storm is a thousand first boots, and each /ipxe waiting for a commit of
// its own kept machines seconds from their script. The write is queued
// ahead of the boot's own events, so a crash loses both or neither; a
// booted report of a machine with no assigned version assigns the version
// it booted (applyChange), which closes the rest.
func (db *DB) AssignFirstVersion(ctx context.Context, mac sites.MAC, commit string) error {
	err := db.queue(ctx, "first version of "+string(mac), func(t *tx) error {
		_, err := t.exec(`UPDATE machines SET assigned_version = ? WHERE mac = ? AND assigned_version = ''`, commit, string(mac))
		return err
	})
	if err != nil {
		return fmt.Errorf("assign first version %s to machine %s: %w", commit, mac, err)
	}
	return nil
}

// assign sets the version machine mac boots.
func (t *tx) assign(mac sites.MAC, commit string) error {
	_, err := t.exec(`UPDATE machines SET assigned_version = ? WHERE mac = ?`, commit, string(mac))
	return err
}

// Observation is what the network showed of a machine: a DHCP packet's
// options or an iPXE request's parameters. Empty fields are unknown.
type Observation struct {
	MAC         sites.MAC
	Site        string // the site whose network it was seen on
	IP          netip.Addr
	UUID        string
	Serial      string
	Arch        string
	VendorClass string
}

// Observe records what the network showed of a machine. A MAC in no site
// config becomes a discovered machine, within the discovery rate
// (DB.DiscoveryRate; over it the observation is dropped); for a known one,
// the identity fields seen are updated, never the declared ones.
func (db *DB) Observe(ctx context.Context, o Observation) error {
	err := db.do(ctx, func(t *tx) error {
		var exists int
		switch err := t.queryRow(`SELECT count(*) FROM machines WHERE mac = ?`, string(o.MAC)).Scan(&exists); {
		case err != nil:
			return err
		case exists == 0 && !t.db().disc.admit(o.Site, o.MAC, t.db().now(), t.db().DiscoveryRate):
			return nil
		}
		t.db().seen.forget(o.MAC)
		now := fmtTime(t.db().now())
		_, err := t.exec(`INSERT INTO machines (mac, site, state, uuid, serial, arch, vendor_class, last_ip, first_seen, last_seen, discovered)
			VALUES (?, ?, 'discovered', ?, ?, ?, ?, ?, ?, ?, 1)
			ON CONFLICT (mac) DO UPDATE SET
				site = CASE WHEN machines.discovered = 1 AND excluded.site != '' THEN excluded.site ELSE machines.site END,
				uuid = coalesce(nullif(excluded.uuid, ''), machines.uuid),
				serial = coalesce(nullif(excluded.serial, ''), machines.serial),
				arch = coalesce(nullif(excluded.arch, ''), machines.arch),
				vendor_class = coalesce(nullif(excluded.vendor_class, ''), machines.vendor_class),
				last_ip = coalesce(nullif(excluded.last_ip, ''), machines.last_ip),
				first_seen = coalesce(machines.first_seen, excluded.first_seen),
				last_seen = excluded.last_seen`,
			string(o.MAC), o.Site, o.UUID, o.Serial, o.Arch, o.VendorClass, addrText(o.IP), now, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("observe machine %s: %w", o.MAC, err)
	}
	return nil
}

// FillIdentity records a machine's SMBIOS UUID and serial as its iPXE
// request gave them, only where the row has none: iPXE's ${uuid} and
// ${serial} come in the query string of an unauthenticated request, so
// they never create a machine nor overwrite what DHCP (option 97) or an
// earlier boot recorded. A MAC without a row is left alone.
//
// The write is queued, not waited for (Flush waits): it comes from the /ipxe
// answer of a first boot, and in a bring-up every boot is a first boot. A
// write lost with a crash is made again on the machine's next boot.
func (db *DB) FillIdentity(ctx context.Context, mac sites.MAC, uuid, serial string) error {
	if uuid == "" && serial == "" {
		return nil
	}
	err := db.queue(ctx, "identity of "+string(mac), func(t *tx) error {
		_, err := t.exec(`UPDATE machines SET
				uuid = CASE WHEN uuid = '' THEN ? ELSE uuid END,
				serial = CASE WHEN serial = '' THEN ? ELSE serial END
			WHERE mac = ? AND ((uuid = '' AND ? != '') OR (serial = '' AND ? != ''))`,
			uuid, serial, string(mac), uuid, serial)
		return err
	})
	if err != nil {
		return fmt.Errorf("fill identity of machine %s: %w", mac, err)
	}
	return nil
}

// machineColumns are the columns scanMachine reads, in order.
const machineColumns = `mac, site, name, role, state, uuid, serial, arch, vendor_class, image,
	current_version, desired_version, assigned_version, last_ip, first_seen, last_seen, discovered`

type scanner interface{ Scan(dest ...any) error }

func scanMachine(s scanner) (Machine, error) {
	var m Machine
	var mac, role, state, ip string
	var first, last sql.NullString
	err := s.Scan(&mac, &m.Site, &m.Name, &role, &state, &m.UUID, &m.Serial, &m.Arch, &m.VendorClass,
		&m.Image, &m.CurrentVersion, &m.DesiredVersion, &m.AssignedVersion, &ip, &first, &last, &m.Discovered)
	if err != nil {
		return m, err
	}
	m.MAC, m.Role, m.State = sites.MAC(mac), sites.Role(role), State(state)
	if m.LastIP, err = parseAddr(ip); err != nil {
		return m, err
	}
	if m.FirstSeen, err = parseTime(first); err != nil {
		return m, err
	}
	m.LastSeen, err = parseTime(last)
	return m, err
}

// Machine returns the machine with the given MAC.
func (db *DB) Machine(ctx context.Context, mac sites.MAC) (Machine, error) {
	m, err := scanMachine(db.queryRow(ctx, `SELECT `+machineColumns+` FROM machines WHERE mac = ?`, string(mac)))
	if err != nil {
		return Machine{}, fmt.Errorf("machine %s: %w", mac, err)
	}
	return m, nil
}

// MachineByName returns the machine a site's config declares under name.
func (db *DB) MachineByName(ctx context.Context, site, name string) (Machine, error) {
	m, err := scanMachine(db.queryRow(ctx, `SELECT `+machineColumns+` FROM machines
		WHERE site = ? AND name = ? AND discovered = 0`, site, name))
	if err != nil {
		return Machine{}, fmt.Errorf("machine %s of site %s: %w", name, site, err)
	}
	return m, nil
}

// MachineFilter selects machines; zero fields select all.
type MachineFilter struct {
	Site    string
	Role    sites.Role
	State   State
	Version string // current version (commit)
	// Outdated selects declared machines whose current version is not
	// their desired one.
	Outdated bool
	// Discovered selects only the machines in no site config.
	Discovered bool
	// NewestFirst orders by last seen, the latest first, instead of by
	// site, name and MAC.
	NewestFirst bool
	// After continues a listing (MachinePage): the cursor a previous page
	// returned as next. Empty starts at the first machine.
	After string
	// Limit bounds a page (MachinePage): DefaultPage if 0, MaxPage at most.
	Limit int
}

// Page sizes of the listings that take a limit.
const (
	DefaultPage = 100
	MaxPage     = 1000
)

// pageSize returns n bounded to a page: DefaultPage if 0, at most MaxPage.
func pageSize(n int) int {
	switch {
	case n <= 0:
		return DefaultPage
	case n > MaxPage:
		return MaxPage
	}
	return n
}

// Machines lists every machine f selects (ignoring After and Limit), by
// site, then name, then MAC (or newest first). Lists shown to people use
// MachinePage: the whole table may be large.
func (db *DB) Machines(ctx context.Context, f MachineFilter) ([]Machine, error) {
	f.After = ""
	ms, _, err := db.machines(ctx, f, -1)
	return ms, err
}

// MachinePage lists the machines f selects a page at a time: at most
// f.Limit after f.After. next is the cursor of the following page, empty
// after the last one. A cursor is opaque; it stays valid while machines
// come and go (the listing goes on after the machine it names).
func (db *DB) MachinePage(ctx context.Context, f MachineFilter) (ms []Machine, next string, err error) {
	return db.machines(ctx, f, pageSize(f.Limit))
}

// machines runs a listing of at most n machines (all if n < 0).
func (db *DB) machines(ctx context.Context, f MachineFilter, n int) ([]Machine, string, error) {
	var where []string
	var args []any
	add := func(cond string, arg ...any) {
		where = append(where, cond)
		args = append(args, arg...)
	}
	if f.Site != "" {
		add("site = ?", f.Site)
	}
	if f.Role != "" {
		add("role = ?", string(f.Role))
	}
	if f.State != "" {
		add("state = ?", string(f.State))
	}
	if f.Version != "" {
		add("current_version = ?", f.Version)
	}
	if f.Outdated {
		add("discovered = 0 AND desired_version != '' AND current_version != desired_version")
	}
	if f.Discovered {
		add("discovered = 1")
	}
	order := " ORDER BY site, name, mac"
	if f.NewestFirst {
		order = " ORDER BY coalesce(last_seen, '') DESC, mac DESC"
	}
	if f.After != "" {
		parts := 3
		if f.NewestFirst {
			parts = 2
		}
		key, err := parseCursor(f.After, parts)
		if err != nil {
			return nil, "", fmt.Errorf("list machines: cursor %q: %w", f.After, ErrBadCursor)
		}
		if f.NewestFirst {
			add("(coalesce(last_seen, ''), mac) < (?, ?)", key[0], key[1])
		} else {
			add("(site, name, mac) > (?, ?, ?)", key[0], key[1], key[2])
		}
	}
	q := `SELECT ` + machineColumns + ` FROM machines`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += order
	if n >= 0 {
		q += " LIMIT ?"
		args = append(args, n+1) // one more says whether a next page exists
	}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list machines: %w", err)
	}
	defer rows.Close()
	var ms []Machine
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list machines: %w", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list machines: %w", err)
	}
	next := ""
	if n >= 0 && len(ms) > n {
		ms = ms[:n]
		last := ms[n-1]
		if f.NewestFirst {
			seen := ""
			if !last.LastSeen.IsZero() {
				seen = last.LastSeen.UTC().Format(timeFormat)
			}
			next = makeCursor(seen, string(last.MAC))
		} else {
			next = makeCursor(last.Site, last.Name, string(last.MAC))
		}
	}
	return ms, next, nil
}

// MachineCount is how many machines share a site, a state, whether they are
// declared and outdated, and the version they run: what the overview
// counts, without reading every machine.
type MachineCount struct {
	Site       string
	State      State
	Discovered bool
	Outdated   bool
	Version    string // current version (commit)
	N          int
}

// MachineCounts counts the machines by site, state, discovered, outdated
// and current version.
func (db *DB) MachineCounts(ctx context.Context) ([]MachineCount, error) {
	rows, err := db.query(ctx, `SELECT site, state, discovered,
			discovered = 0 AND desired_version != '' AND current_version != desired_version,
			current_version, count(*)
		FROM machines GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`)
	if err != nil {
		return nil, fmt.Errorf("count machines: %w", err)
	}
	defer rows.Close()
	var out []MachineCount
	for rows.Next() {
		var c MachineCount
		var state string
		if err := rows.Scan(&c.Site, &state, &c.Discovered, &c.Outdated, &c.Version, &c.N); err != nil {
			return nil, fmt.Errorf("count machines: %w", err)
		}
		c.State = State(state)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count machines: %w", err)
	}
	return out, nil
}
