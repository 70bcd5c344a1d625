// Package pxe answers the machine-facing half of a network boot: TFTP for the
// iPXE binaries, and plain HTTP for the chain script, each machine's iPXE
// script, the content-addressed node images, the Ignition config and the
// node's callbacks. It also holds the image store those artifacts are served
// from and the per-boot tokens that guard the config.
//
// The package decides with pure functions (FirmwareName, Target.Action,
// Scripts.Script) and keeps the sockets thin around them. What to boot, which
// config to serve and where boot events go are asked through the small
// interfaces declared here (Targets, Configs, Callbacks, Recorder, Leases,
// Metrics), with plain types, so that pxe imports no other package of the
// project: the composition root adapts the inventory and the site versions.
//
// See docs/boot-flow.md for the protocol the machines speak.
package pxe
