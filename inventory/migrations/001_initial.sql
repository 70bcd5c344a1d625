-- The first schema: sites and their config versions, machines, leases and
-- boot events.
--
-- Conventions (see the package doc): times are UTC text of fixed width with
-- milliseconds, 2026-03-01T10:00:00.000Z, so they read well, sort as text and
-- work with SQLite's date functions; MACs are lower-case colon form; text
-- fields that are merely unknown are '' (NULL is kept for times never
-- reached). Every table is STRICT so a wrong type fails loudly.

-- A site the server has validated at least one version of.
CREATE TABLE sites (
    name            TEXT PRIMARY KEY,
    active_commit   TEXT,                -- NULL until a version is accepted
    bootstrapped    INTEGER NOT NULL DEFAULT 0 CHECK (bootstrapped IN (0, 1)),
    bootstrapped_at TEXT
) STRICT;

-- Every config version validated for a site, accepted or not. commit_hash
-- (not "commit", an SQL keyword that would need quoting in every query).
CREATE TABLE site_versions (
    site         TEXT NOT NULL REFERENCES sites (name),
    commit_hash  TEXT NOT NULL,
    ref          TEXT NOT NULL DEFAULT '',   -- what the binding said: v42, main, 3f9c2e1
    tags         TEXT NOT NULL DEFAULT '[]', -- JSON list of tags on the commit
    message      TEXT NOT NULL DEFAULT '',   -- first line of the commit message
    author       TEXT NOT NULL DEFAULT '',
    commit_time  TEXT,
    status       TEXT NOT NULL CHECK (status IN ('active', 'rejected', 'superseded')),
    reasons      TEXT NOT NULL DEFAULT '[]', -- JSON list of problems when rejected
    validated_at TEXT NOT NULL,
    PRIMARY KEY (site, commit_hash)
) STRICT;

CREATE INDEX site_versions_by_time ON site_versions (site, validated_at);
-- At most one active version per site, whatever the code does.
CREATE UNIQUE INDEX site_versions_one_active ON site_versions (site) WHERE status = 'active';

-- Every machine declared in a site config or seen on the network.
CREATE TABLE machines (
    mac             TEXT PRIMARY KEY,
    site            TEXT NOT NULL DEFAULT '',
    name            TEXT NOT NULL DEFAULT '',  -- hostname, from the site config
    role            TEXT NOT NULL DEFAULT '',  -- master | worker | '' (undeclared)
    state           TEXT NOT NULL CHECK (state IN ('discovered', 'known', 'booting', 'provisioned', 'failed')),
    uuid            TEXT NOT NULL DEFAULT '',  -- SMBIOS UUID (DHCP option 97, iPXE ${uuid})
    serial          TEXT NOT NULL DEFAULT '',
    arch            TEXT NOT NULL DEFAULT '',  -- client architecture (DHCP option 93)
    vendor_class    TEXT NOT NULL DEFAULT '',  -- DHCP option 60
    image           TEXT NOT NULL DEFAULT '',
    current_version TEXT NOT NULL DEFAULT '',  -- commit the machine last reported booted on
    desired_version TEXT NOT NULL DEFAULT '',  -- its site's active commit
    last_ip         TEXT NOT NULL DEFAULT '',
    first_seen      TEXT,                      -- NULL: declared, never seen
    last_seen       TEXT,
    discovered      INTEGER NOT NULL DEFAULT 0 CHECK (discovered IN (0, 1)) -- 1: in no site config
) STRICT, WITHOUT ROWID; -- keyed by MAC alone: no second index to maintain per boot event

-- Names are unique among the declared machines of a site; undeclared rows
-- keep their old name as history.
CREATE UNIQUE INDEX machines_by_name ON machines (site, name) WHERE discovered = 0;
CREATE INDEX machines_by_state ON machines (site, state);
CREATE INDEX machines_by_version ON machines (site, current_version);

-- DHCP leases, one row per address in use. The key is the address as a
-- 32-bit number, so range and gap searches walk the table's own b-tree; ip
-- is the same address as text, for reading (unique through the key, and
-- not indexed: every index is one more page written per committed lease).
-- mac is unique but NULL while an address is held after a DHCPDECLINE: the
-- hold belongs to the address (someone else answers on it), not to the
-- client, which moves on to another address.
CREATE TABLE leases (
    ip_num   INTEGER PRIMARY KEY CHECK (ip_num BETWEEN 0 AND 4294967295),
    ip       TEXT NOT NULL,
    mac      TEXT UNIQUE,
    site     TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    state    TEXT NOT NULL CHECK (state IN ('offered', 'bound', 'released', 'declined')),
    expires  TEXT NOT NULL,   -- after this the address may go to another client
    updated  TEXT NOT NULL,
    CHECK ((mac IS NULL) = (state = 'declined'))
) STRICT;

-- Allocation reuses the address that expired first.
CREATE INDEX leases_by_expiry ON leases (expires);
CREATE INDEX leases_by_site ON leases (site, ip_num);

-- Every step of every boot, as the DHCP and HTTP paths saw it. A log: no
-- foreign key, so events outlive what they mention.
CREATE TABLE boot_events (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    mac     TEXT NOT NULL,
    site    TEXT NOT NULL DEFAULT '',
    boot_id TEXT,                        -- groups the events of one boot, when known
    kind    TEXT NOT NULL,               -- dhcp-discover, tftp, ipxe-script, booted, ...
    version TEXT NOT NULL DEFAULT '',
    ip      TEXT NOT NULL DEFAULT '',    -- the machine's address, when known
    source  TEXT NOT NULL DEFAULT '',    -- where the request came from (IP:port)
    detail  TEXT NOT NULL DEFAULT ''     -- free text or JSON
) STRICT;

CREATE INDEX boot_events_by_mac ON boot_events (mac, id);
CREATE INDEX boot_events_by_site ON boot_events (site, id);
CREATE INDEX boot_events_by_boot ON boot_events (boot_id) WHERE boot_id IS NOT NULL;
