package ignition

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/ignition/v2/config/v3_0/types"
	"github.com/undercloud/undercloud/sites"
)

// What every config installs so that the node itself reports back: a
// reporter script, undercloud-booted.service (once per boot, retried while
// the server is away) and a heartbeat timer. The script and units are the
// same for every boot of a machine at a version; the per-boot values (the
// booted URL with the boot's token, the heartbeat URL with its credential)
// are in ReportEnvPath alone, which WithReport adds to a rendered config.
const (
	// ReporterPath is the reporter script: POSIX sh, coreutils and curl.
	ReporterPath = "/usr/local/libexec/undercloud-report"
	// ReportEnvPath holds the per-boot values, read by the units
	// (EnvironmentFile=). 0600: its URLs carry credentials.
	ReportEnvPath = "/etc/undercloud/report.env"
	// BootedUnit POSTs the booted report once the network is up.
	BootedUnit = "undercloud-booted.service"
	// HeartbeatUnit POSTs one heartbeat; HeartbeatTimer starts it.
	HeartbeatUnit  = "undercloud-heartbeat.service"
	HeartbeatTimer = "undercloud-heartbeat.timer"
	// ReportAgent is the User-Agent of the reporter, followed by
	// " (booted)" or " (heartbeat)": how the server tells that the unit
	// sent a report.
	ReportAgent = "undercloud-report/1"
	// reportedStamp remembers the boot id already reported, so an installed
	// OS rebooting from disk does not report the install's boot again.
	reportedStamp = "/var/lib/undercloud/booted"
	// refusedStatus is the reporter's exit status when the server refused
	// a report (HTTP 4xx): retrying cannot help.
	refusedStatus = 3
)

// PerBoot are the values a config carries for one boot only.
type PerBoot struct {
	BootID       string
	BootedURL    string // POST target of the booted report, with the boot's token
	HeartbeatURL string // POST target of heartbeats, with the heartbeat credential
}

// reportEnv renders ReportEnvPath: systemd EnvironmentFile lines, values
// unquoted, so they must not contain what that format interprets.
func reportEnv(pb PerBoot) (string, error) {
	for name, v := range map[string]string{"boot id": pb.BootID, "booted URL": pb.BootedURL, "heartbeat URL": pb.HeartbeatURL} {
		if v == "" {
			return "", fmt.Errorf("report: no %s", name)
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`'"\`+"`", r) }) {
			return "", fmt.Errorf("report: %s %q: contains spaces, quotes, backslashes or control characters", name, v)
		}
	}
	for _, u := range []string{pb.BootedURL, pb.HeartbeatURL} {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return "", fmt.Errorf("report: URL %q: want an absolute http(s) URL", u)
		}
	}
	return "# Per-boot values of undercloud's reports, written by Ignition for this boot only.\n" +
		"UNDERCLOUD_BOOT_ID=" + pb.BootID + "\n" +
		"UNDERCLOUD_BOOTED_URL=" + pb.BootedURL + "\n" +
		"UNDERCLOUD_HEARTBEAT_URL=" + pb.HeartbeatURL + "\n", nil
}

// WithReport returns cfg (a config Render produced) with pb's values added
// as ReportEnvPath, without re-validating the rest: see AppendFile.
func WithReport(cfg []byte, pb PerBoot) ([]byte, error) {
	a, err := NewAppender(cfg)
	if err != nil {
		return nil, err
	}
	return a.WithReport(pb)
}

// WithReport is WithReport on the config a was made from.
func (a *Appender) WithReport(pb PerBoot) ([]byte, error) {
	env, err := reportEnv(pb)
	if err != nil {
		return nil, err
	}
	return a.Append(ReportEnvPath, 0o600, env)
}

// reportUnits are the units of the reporter. The heartbeat service has no
// [Install] section and is not enabled: only its timer starts it.
func reportUnits(interval time.Duration) []types.Unit {
	if interval <= 0 { // a site not through sites.Load: its default
		interval = sites.DefaultHeartbeat
	}
	env := "EnvironmentFile=" + ReportEnvPath
	booted := unitFile(
		[]string{"Description=Report this boot to undercloud", "Wants=network-online.target", "After=network-online.target",
			// Never stop restarting: a server away for an hour must still
			// hear of the boot once it is back.
			"StartLimitIntervalSec=0"},
		[]string{"Type=oneshot", "RemainAfterExit=yes", env,
			"ExecStart=" + ReporterPath + " booted",
			// curl retries a refused connection with backoff; anything
			// else (no route, a 5xx) fails the unit and systemd runs it
			// again. A refusal (4xx, e.g. an expired token) is final.
			"Restart=on-failure", "RestartSec=30s", "RestartPreventExitStatus=" + strconv.Itoa(refusedStatus)},
	)
	beat := "[Unit]\nDescription=Tell undercloud this machine is alive\nWants=network-online.target\nAfter=network-online.target\n\n" +
		"[Service]\nType=oneshot\n" + env + "\nExecStart=" + ReporterPath + " heartbeat\n"
	iv := strconv.FormatInt(int64(interval/time.Second), 10) + "s"
	timer := "[Unit]\nDescription=Heartbeat to undercloud every " + iv + "\n\n" +
		"[Timer]\nOnBootSec=" + iv + "\nOnUnitActiveSec=" + iv + "\nAccuracySec=1s\n\n" +
		"[Install]\nWantedBy=timers.target\n"
	return []types.Unit{
		unit(BootedUnit, booted),
		{Name: HeartbeatUnit, Contents: ptr(beat)},
		unit(HeartbeatTimer, timer),
	}
}

// writtenPaths lists what a config writes, for the reporter: every storage
// file, and every unit and drop-in with contents at its path under
// /etc/systemd/system. c is a config of any spec version.
func writtenPaths(c any) ([]string, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var v struct {
		Storage struct{ Files []struct{ Path string } }
		Systemd struct {
			Units []struct {
				Name     string
				Contents *string
				Dropins  []struct {
					Name     string
					Contents *string
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	var ps []string
	for _, f := range v.Storage.Files {
		ps = append(ps, f.Path)
	}
	for _, u := range v.Systemd.Units {
		if u.Contents != nil {
			ps = append(ps, "/etc/systemd/system/"+u.Name)
		}
		for _, d := range u.Dropins {
			if d.Contents != nil {
				ps = append(ps, "/etc/systemd/system/"+u.Name+".d/"+d.Name)
			}
		}
	}
	return ps, nil
}

// reporterScript is the reporter for a config writing paths: it hashes each
// path on disk and POSTs {"digest","hostname","files"} to the URL of its
// argument (booted or heartbeat), where digest is the sha256 of the lines
// "<path> <sha256>\n" sorted bytewise (testvm.FilesDigest). ReportEnvPath is
// never among them: it differs every boot and holds credentials.
func reporterScript(paths []string) (string, error) {
	paths = slices.Clone(paths)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	var list strings.Builder
	for _, p := range paths {
		if p == ReportEnvPath {
			continue
		}
		if strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return "", fmt.Errorf("path %q: contains control characters, which the booted report cannot carry", p)
		}
		key, _ := json.Marshal(p) // a string always marshals
		fmt.Fprintf(&list, "f %s %s\n", shellQuote(p), shellQuote(string(key)))
	}
	return strings.Replace(reporterTemplate, "@FILES@\n", list.String(), 1), nil
}

// shellQuote quotes s as one POSIX shell word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reporterTemplate is the script; @FILES@ becomes one "f PATH JSONKEY" line
// per written path.
const reporterTemplate = `#!/bin/sh
# undercloud-report booted|heartbeat: tells the undercloud server that
# provisioned this machine that it booted (once per boot) or is alive, with
# the sha256 of every file its Ignition config wrote. Written by that config;
# the URLs come from ` + ReportEnvPath + ` (EnvironmentFile=).
# Exit status: 0 reported, ` + "3" + ` refused by the server (final), 1 not
# delivered (systemd retries).
set -u
# UNDERCLOUD_REPORT_ROOT, for tests and rescue systems: hash the files under
# this directory while reporting their paths as the node sees them.
root=${UNDERCLOUD_REPORT_ROOT:-}
kind=${1:-}
case $kind in
booted) url=${UNDERCLOUD_BOOTED_URL:-} ;;
heartbeat) url=${UNDERCLOUD_HEARTBEAT_URL:-} ;;
*) echo "usage: $0 booted|heartbeat" >&2; exit 3 ;;
esac
if [ -z "$url" ]; then
	echo "undercloud-report: no $kind URL in ` + ReportEnvPath + `" >&2
	exit 3
fi
stamp=$root` + reportedStamp + `
boot=${UNDERCLOUD_BOOT_ID:-}
if [ "$kind" = booted ] && [ -n "$boot" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$boot" ]; then
	echo "undercloud-report: boot $boot was already reported"
	exit 0
fi

lines=
files=
# f PATH JSONKEY: add PATH's sha256 to the digest lines and the files object.
f() {
	if [ ! -f "$root$1" ]; then
		echo "undercloud-report: $1 is missing" >&2
		return 0
	fi
	s=$(sha256sum <"$root$1") || exit 1
	s=${s%% *}
	lines="$lines$1 $s
"
	files="$files${files:+,}$2:\"$s\""
}
@FILES@
digest=$(printf '%s' "$lines" | LC_ALL=C sort | sha256sum) || exit 1
digest=${digest%% *}
host=
if [ -r "$root/etc/hostname" ]; then
	read -r host <"$root/etc/hostname" || true
fi
case $host in *[!A-Za-z0-9.-]*) host= ;; esac
body=$(printf '{"digest":"%s","hostname":"%s","files":{%s}}' "$digest" "$host" "$files")

code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
	-A "` + ReportAgent + ` ($kind)" --data-binary "$body" \
	--connect-timeout 10 --max-time 60 --retry 6 --retry-connrefused --retry-max-time 300 "$url")
rc=$?
case $code in
2??) ;;
4??)
	echo "undercloud-report: $kind refused by the server (HTTP $code)" >&2
	exit 3
	;;
*)
	echo "undercloud-report: $kind not delivered (curl exit $rc, HTTP $code)" >&2
	exit 1
	;;
esac
if [ "$kind" = booted ] && [ -n "$boot" ]; then
	# On disk: a reset right after must not report this boot again. All of
	# it, not just the file: on an overlay root the directories above it
	# were just copied up, and fsync of the file alone left them unwritten
	# (a reset within a second lost the stamp).
	mkdir -p "${stamp%/*}" && printf '%s\n' "$boot" >"$stamp" && sync
fi
echo "undercloud-report: $kind reported, digest $digest"
`
