package web

// example is a saved query of the query page.
type example struct {
	Title string
	SQL   string
}

// examples are the questions operators ask of the inventory most, written
// against its schema (inventory/migrations): times are UTC text like
// 2026-03-01T10:00:00.000Z, which SQLite's date functions read.
func examples() []example {
	return []example{
		{"Machines that fetched their config but never reported booted since", `SELECT m.site, m.name, m.mac, e.at AS config_served_at, e.version
FROM boot_events e JOIN machines m ON m.mac = e.mac
WHERE e.kind = 'ignition'
  AND e.id = (SELECT max(id) FROM boot_events WHERE mac = e.mac AND kind = 'ignition')
  AND NOT EXISTS (SELECT 1 FROM boot_events b WHERE b.mac = e.mac AND b.kind = 'booted' AND b.id > e.id)
ORDER BY e.at DESC`},
		{"Boots completed per day", `SELECT date(at) AS day, count(*) AS boots, count(DISTINCT mac) AS machines
FROM boot_events WHERE kind = 'booted'
GROUP BY day ORDER BY day DESC`},
		{"Machines on an old version", `SELECT site, name, mac, substr(current_version, 1, 12) AS running,
  substr(desired_version, 1, 12) AS desired, state, last_seen
FROM machines
WHERE discovered = 0 AND desired_version != '' AND current_version != desired_version
ORDER BY site, name`},
		{"Leases expiring in the next 10 minutes", `SELECT ip, mac, site, hostname, state, expires
FROM leases
WHERE state IN ('offered', 'bound')
  AND expires BETWEEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AND strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+10 minutes')
ORDER BY expires`},
		{"Slowest boots (first step to booted)", `SELECT mac, boot_id, min(at) AS started, max(at) AS booted_at,
  round((julianday(max(at)) - julianday(min(at))) * 86400, 1) AS seconds
FROM boot_events
WHERE boot_id IS NOT NULL
GROUP BY mac, boot_id
HAVING sum(kind = 'booted') > 0
ORDER BY seconds DESC LIMIT 20`},
		{"Rejected config versions and why", `SELECT site, substr(commit_hash, 1, 12) AS version, ref, validated_at, reasons
FROM site_versions WHERE status = 'rejected'
ORDER BY validated_at DESC`},
		{"Boot steps by kind in the last hour", `SELECT kind, count(*) AS events, count(DISTINCT mac) AS machines
FROM boot_events
WHERE at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')
GROUP BY kind ORDER BY events DESC`},
		{"Changes by person (audit log)", `SELECT actor, action, result, count(*) AS times, max(at) AS last
FROM audit_log GROUP BY actor, action, result ORDER BY last DESC`},
		{"Tables and their columns", `SELECT m.name AS tbl, p.name AS col, p.type, p.pk
FROM sqlite_schema m JOIN pragma_table_info(m.name) p
WHERE m.type = 'table' ORDER BY m.name, p.cid`},
	}
}
