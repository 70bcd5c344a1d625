-- The audit log: every change an operator asked for through the web UI or
-- the JSON API (a rebuild, a rollout action, a repo refresh, a login), who
-- asked, from where, and what came of it. A log: no foreign key, so entries
-- outlive the machines and sites they name. Never updated, never deleted by
-- the server.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,          -- increasing: the order things happened in
    at     TEXT NOT NULL,                -- when the request was answered
    actor  TEXT NOT NULL,                -- the API token's name (never the token)
    source TEXT NOT NULL DEFAULT '',     -- ui or api, and the client address
    action TEXT NOT NULL,                -- rebuild, rollout-start, refresh, login, ...
    target TEXT NOT NULL DEFAULT '',     -- site, site/machine
    detail TEXT NOT NULL DEFAULT '',     -- what was asked, in words
    result TEXT NOT NULL                 -- ok, denied: ..., failed: ...
) STRICT;

CREATE INDEX audit_log_by_actor ON audit_log (actor, id);
