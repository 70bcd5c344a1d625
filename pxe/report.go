package pxe

import "net/url"

// ConfigRequest asks Configs for the config of one boot: the machine, the
// version its token names, and the per-boot values the config hands to the
// node's undercloud-booted.service and heartbeat timer. Everything else in
// a config is the same for every boot of a machine at a version.
type ConfigRequest struct {
	MAC     string // canonical
	Version string
	BootID  string
	// BootedURL is where the node POSTs its booted report: this boot's
	// token, on the base URL the machine reached the server on.
	BootedURL string
	// HeartbeatURL is where it POSTs its heartbeats, with the boot's
	// heartbeat credential (Tokens.MintHeartbeat), which outlives the token.
	HeartbeatURL string
}

// ReportURLs returns the booted and heartbeat URLs of one boot of machine
// mac on version, on base (the server's URL as the machine reaches it).
// mac is canonical and tokens are base64url: both go in unescaped, so a placeholder such as
// "<boot-token>" reads as itself in `undercloud render`.
func ReportURLs(base, mac, version, bootToken, heartbeatCred string) (booted, heartbeat string) {
	q := "?mac=" + mac + "&version=" + url.QueryEscape(version) + "&token="
	return base + "/booted" + q + bootToken, base + "/heartbeat" + q + heartbeatCred
}

// Placeholders of the per-boot values in a config shown by `undercloud
// render`: the same config a machine is served, without credentials.
const (
	PlaceholderBootID    = "<boot-id>"
	PlaceholderToken     = "<boot-token>"
	PlaceholderHeartbeat = "<heartbeat-credential>"
)

// PlaceholderRequest is the ConfigRequest `undercloud render` shows a
// machine's config with: base as given, every credential a placeholder.
func PlaceholderRequest(base, mac, version string) ConfigRequest {
	b, h := ReportURLs(base, mac, version, PlaceholderToken, PlaceholderHeartbeat)
	return ConfigRequest{MAC: mac, Version: version, BootID: PlaceholderBootID, BootedURL: b, HeartbeatURL: h}
}
