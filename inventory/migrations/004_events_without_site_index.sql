-- Every boot event updated three indexes; the (site, id) one served only the
-- live feed, which reads forward from the last id it saw (WHERE id > ?) and
-- filters by site on the way: the primary key does that as well. One index
-- fewer is one random page fewer per event when a datacenter boots at once.
DROP INDEX boot_events_by_site;
