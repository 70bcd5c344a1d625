-- Every machine boots the version it is assigned (provision/): its first
-- boot assigns its site's active version, and only a rebuild or a rollout
-- assigns another, so a machine that reboots by itself never takes a new
-- version outside a rollout. Empty: not assigned yet.
ALTER TABLE machines ADD COLUMN assigned_version TEXT NOT NULL DEFAULT '';
