// Package provision is the provisioning core: every decision about what a
// machine boots, made without sockets, for the protocol packages to ask.
//
//   - dhcp asks for the network plan (Service implements dhcp.Plan), leases
//     (Leases) and where to record its events (DHCPEvents);
//   - pxe asks for a machine's target and config, whether a request comes
//     from the machine's own address, and hands over its booted and
//     heartbeat reports and its boot events (Service implements
//     pxe.Targets, pxe.Configs, pxe.Sources, pxe.Callbacks and pxe.Recorder).
//
// # Which version a machine boots
//
// Every known machine has an assigned version in the inventory. Its first
// boot assigns its site's active version (queued, not waited for: a
// bring-up is all first boots; a booted report assigns what it booted if
// that write was lost); after that it boots its assigned
// version -- through reboots, server restarts and newer activations --
// until a rebuild or a rollout assigns another (the inventory assigns a
// rebuild's target when its power cycle starts). So a machine that reboots
// by itself (a power blip, a panic, an operator's reboot) never takes a new
// version outside the canary, the batches and the one-master-at-a-time
// rule. A site may opt in to rollout.upgrade: on-reboot, where every boot
// takes the active version; the gate refuses that for a site with masters
// unless rollout.allow_masters.
//
// The pure decisions are in decide.go: chooseVersion, installNeeded,
// bootstrapped, and allowedSource (whose address may have a machine's boot
// token, config and callbacks: see Service.Allowed). Service is the thin
// layer that reads the inventory and the tracker for them and writes back
// what they decided.
//
// # Configs and heartbeats
//
// A machine's config is rendered and validated once per site, version,
// machine and bootstrapped flag and kept (configcache.go, a bounded LRU);
// each boot gets it with its own per-boot file appended (the booted URL
// with the boot's token, the heartbeat URL with its heartbeat credential).
// ServedConfig is the same path without the cache, for `undercloud render`.
// Whether a heartbeat credential still speaks for its machine is
// heartbeatAccepted (heartbeat.go): its version is still the machine's
// assigned one, and its boot is the machine's latest booted report or
// latest served config.
package provision
