-- A machine's state follows its boots, not the order in which their events
-- reach the writer (see nextState): the row keeps the boot id and time of
-- its latest end of a boot (its booted report, or the script that told it
-- there is nothing to boot) and of its latest boot step that may start a
-- boot, so each event is decided from the row alone. Times are NULL until
-- reached; a boot id is '' when the event had none (steps before /ipxe).
ALTER TABLE machines ADD COLUMN ended_boot TEXT NOT NULL DEFAULT '';
ALTER TABLE machines ADD COLUMN ended_at TEXT;
ALTER TABLE machines ADD COLUMN step_boot TEXT NOT NULL DEFAULT '';
ALTER TABLE machines ADD COLUMN step_at TEXT;

-- A provisioned machine ended its latest boot with its latest booted
-- report still in the log (if retention kept it): without it, a late step
-- of that boot would make it booting again, as before this migration.
UPDATE machines SET
    ended_at = (SELECT e.at FROM boot_events e WHERE e.mac = machines.mac AND e.kind = 'booted'
        ORDER BY e.at DESC, e.id DESC LIMIT 1),
    ended_boot = coalesce((SELECT e.boot_id FROM boot_events e WHERE e.mac = machines.mac AND e.kind = 'booted'
        ORDER BY e.at DESC, e.id DESC LIMIT 1), '')
WHERE state = 'provisioned';
