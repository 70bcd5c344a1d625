-- Rebuilds and rollouts: the persisted state of the rebuild engine
-- (pxe/rebuild). The engine writes a row before the action it describes (a
-- rebuild is in power-cycling before its BMC is called; a rollout's plan is
-- stored before its first machine starts), so a server killed at any point
-- resumes from these tables: nothing is rebuilt twice, nothing skipped.

-- One rollout of a site to a config version, with the site's rollout policy
-- as it was when the rollout started.
CREATE TABLE rollouts (
    id             INTEGER PRIMARY KEY,
    site           TEXT NOT NULL,
    target_version TEXT NOT NULL,            -- the commit it rolls out
    state          TEXT NOT NULL CHECK (state IN ('planned', 'running', 'canary-wait', 'paused', 'halted', 'aborted', 'done')),
    policy         TEXT NOT NULL,            -- JSON snapshot of the policy, defaults applied
    failures       INTEGER NOT NULL DEFAULT 0,
    reason         TEXT NOT NULL DEFAULT '', -- why it halted, was aborted, waits or finished so
    started_by     TEXT NOT NULL DEFAULT '',
    confirmed_by   TEXT NOT NULL DEFAULT '', -- who confirmed the canary; '' until someone did
    created        TEXT NOT NULL,
    updated        TEXT NOT NULL
) STRICT;

-- At most one live rollout per site, whatever the code does.
CREATE UNIQUE INDEX rollouts_one_live ON rollouts (site)
    WHERE state IN ('planned', 'running', 'canary-wait', 'paused');
CREATE INDEX rollouts_by_site ON rollouts (site, id);

-- One rebuild of one machine: power-cycle it into a network boot and follow
-- its boot events until it reports booted on the target version.
CREATE TABLE rebuilds (
    id                 INTEGER PRIMARY KEY,
    site               TEXT NOT NULL,
    machine            TEXT NOT NULL,            -- its name in the site config
    mac                TEXT NOT NULL,
    role               TEXT NOT NULL DEFAULT '',
    target_version     TEXT NOT NULL,            -- the commit it must boot
    state              TEXT NOT NULL CHECK (state IN ('requested', 'power-cycling', 'booting', 'config-served', 'booted', 'done', 'failed', 'canceled')),
    reason             TEXT NOT NULL DEFAULT '', -- why it failed or was canceled
    last_event         TEXT NOT NULL DEFAULT '', -- kind of the last boot event seen since the power cycle
    last_event_id      INTEGER NOT NULL DEFAULT 0, -- its boot_events id: where following resumes
    last_event_at      TEXT,
    last_event_version TEXT NOT NULL DEFAULT '',
    rollout_id         INTEGER REFERENCES rollouts (id), -- NULL: requested on its own
    requested_by       TEXT NOT NULL DEFAULT '',
    created            TEXT NOT NULL,
    updated            TEXT NOT NULL,
    stage_started      TEXT NOT NULL,            -- when state was entered: stage timeouts count from it
    power_cycled_at    TEXT,                     -- when the BMC accepted the power cycle
    boot_started_at    TEXT                      -- the first boot event after the power cycle
) STRICT;

-- One rebuild in flight per machine, whatever the code does; also what the
-- boot path asks on every iPXE script (is a rebuild of this MAC pending?).
CREATE UNIQUE INDEX rebuilds_one_in_flight ON rebuilds (mac)
    WHERE state IN ('requested', 'power-cycling', 'booting', 'config-served', 'booted');
-- The rebuilds in flight in ID order, which the engine reads on every tick:
-- a partial index holds only them, however long the history grows.
CREATE INDEX rebuilds_in_flight ON rebuilds (id)
    WHERE state IN ('requested', 'power-cycling', 'booting', 'config-served', 'booted');
CREATE INDEX rebuilds_by_site ON rebuilds (site, id);
CREATE INDEX rebuilds_by_mac ON rebuilds (mac, id);
CREATE INDEX rebuilds_by_rollout ON rebuilds (rollout_id) WHERE rollout_id IS NOT NULL;

-- The plan of a rollout, stored when it starts: which machines, in which
-- order and batch, and the rebuild each one got once started.
CREATE TABLE rollout_machines (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id),
    position   INTEGER NOT NULL,            -- 0-based place in the order
    machine    TEXT NOT NULL,
    mac        TEXT NOT NULL,
    role       TEXT NOT NULL,
    batch      INTEGER NOT NULL,            -- machines of a batch start together
    canary     INTEGER NOT NULL DEFAULT 0 CHECK (canary IN (0, 1)),
    skipped    TEXT NOT NULL DEFAULT '',    -- why it was not rebuilt; '' otherwise
    rebuild_id INTEGER UNIQUE REFERENCES rebuilds (id), -- NULL until started
    PRIMARY KEY (rollout_id, position),
    CHECK (skipped = '' OR rebuild_id IS NULL)
) STRICT, WITHOUT ROWID;
