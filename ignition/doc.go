// Package ignition renders and validates the Ignition config of one machine
// at one config version.
//
// A config is built from the typed structs of github.com/coreos/ignition/v2
// (config/v3_x only; the rest of that module pulls cloud SDKs), never by
// templating JSON, and leaves Render only after Ignition's own parser and
// validator accepted it, in exactly the spec version the machine's image
// declares (sites.Image.Ignition).
//
// How versions are handled: the generated part (hostname, NetworkManager
// keyfile, version file, the core user, etcd, kubelet, static pods, the
// reporter and its booted and heartbeat units) is built once, in spec 3.0.0 types, the oldest
// supported: everything it uses exists there unchanged. It is then parsed
// with the target version's ParseCompatibleVersion, which runs Ignition's
// own translators up to that version. So there is one builder and no
// per-version code beyond a table of parse functions (spec.go); a new spec
// is one line there.
//
// Site snippets (common, then the machine's role) are Butane (translated by
// butane/config.TranslateBytes, raw Ignition out, no files directory) or
// Ignition JSON. Each snippet's Ignition is parsed into the target version
// (older specs translate up; a newer or experimental one is refused) and
// merged with Ignition's merge semantics, child over parent.
//
// The gate is strict: Butane and Ignition warnings are problems too. Every
// problem that comes from a site repo file is a sites.Problem naming the
// file, the field and the line — including a problem that appears only once
// a valid snippet is merged over the generated config, traced back through
// the merge transcript.
//
// Per boot, only one file differs: ReportEnvPath, with the booted URL (the
// boot's token) and the heartbeat URL (its heartbeat credential). Render
// leaves it out, so what it returns is the same for every boot of a machine
// at a version and can be kept; WithReport appends it (AppendFile) without
// validating the rest again; Served does both, and the gate validates that.
//
// Secrets are not rendered: PKI and join tokens are referenced by path
// (a config travels over plain HTTP to whoever holds a valid boot
// token).
package ignition
