-- A client that does DHCP again and again is logged once every FoldWindow
-- (inventory/fold.go); the stored event counts the repeats it stands for.
ALTER TABLE boot_events ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
