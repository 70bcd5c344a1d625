-- A new machine state, 'nothing-to-boot': an unknown machine that was told
-- there is nothing to boot (its iPXE script exits). SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt with the same columns,
-- in the same order, and its indexes recreated. No table references
-- machines, so dropping the old one breaks no foreign key.
CREATE TABLE machines_new (
    mac              TEXT PRIMARY KEY,
    site             TEXT NOT NULL DEFAULT '',
    name             TEXT NOT NULL DEFAULT '',
    role             TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL CHECK (state IN ('discovered', 'nothing-to-boot', 'known', 'booting', 'provisioned', 'failed')),
    uuid             TEXT NOT NULL DEFAULT '',
    serial           TEXT NOT NULL DEFAULT '',
    arch             TEXT NOT NULL DEFAULT '',
    vendor_class     TEXT NOT NULL DEFAULT '',
    image            TEXT NOT NULL DEFAULT '',
    current_version  TEXT NOT NULL DEFAULT '',
    desired_version  TEXT NOT NULL DEFAULT '',
    last_ip          TEXT NOT NULL DEFAULT '',
    first_seen       TEXT,
    last_seen        TEXT,
    discovered       INTEGER NOT NULL DEFAULT 0 CHECK (discovered IN (0, 1)),
    assigned_version TEXT NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;

INSERT INTO machines_new (mac, site, name, role, state, uuid, serial, arch, vendor_class, image,
    current_version, desired_version, last_ip, first_seen, last_seen, discovered, assigned_version)
SELECT mac, site, name, role, state, uuid, serial, arch, vendor_class, image,
    current_version, desired_version, last_ip, first_seen, last_seen, discovered, assigned_version
FROM machines;

DROP TABLE machines;
ALTER TABLE machines_new RENAME TO machines;

CREATE UNIQUE INDEX machines_by_name ON machines (site, name) WHERE discovered = 0;
CREATE INDEX machines_by_state ON machines (site, state);
CREATE INDEX machines_by_version ON machines (site, current_version);
