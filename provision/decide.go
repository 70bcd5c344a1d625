package provision

import "github.com/undercloud/undercloud/sites"

// chooseVersion decides which version a known machine boots: its assigned
// version, or its site's active one when it has none yet (its first boot),
// when the site upgrades on reboot, or when the assigned version cannot be
// served to it any more (servable false: the version is gone from the
// repo, or no longer declares the machine). reassign says the machine's
// assignment must change to the version returned.
func chooseVersion(assigned, active string, onReboot, servable bool) (version string, reassign bool) {
	switch {
	case assigned == active:
		return active, false
	case assigned == "", onReboot, !servable:
		return active, true
	}
	return assigned, false
}

// installNeeded decides whether a machine whose image is an installer runs
// it (rather than booting its local disk): only while a rebuild of it is
// pending (not yet served its config), or before it ever reported booted
// (its first install). After an installer fetched its config it installs
// and reboots, and that reboot must take the disk: a machine never loops
// installing.
func installNeeded(rebuildPending bool, current string) bool {
	return rebuildPending || current == ""
}

// bootstrapped decides whether a site's etcd cluster exists: every master
// has reported booted at least once (current gives the version each last
// booted, "" for never). Until then masters are rendered to create the
// cluster (--initial-cluster-state new); after, to join it (existing). A
// site without masters has no cluster to bootstrap.
func bootstrapped(masters []sites.Machine, current func(sites.MAC) string) bool {
	if len(masters) == 0 {
		return false
	}
	for _, m := range masters {
		if current(m.MAC) == "" {
			return false
		}
	}
	return true
}
