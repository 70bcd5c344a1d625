package testvm

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// What a boot of the test image prints on its serial console. The
// initramfs (testvm/image/init) is a generic live-PXE initramfs and says
// what it does in "live-init: " lines; after switch_root everything comes
// from systemd (status lines, with systemd.show_status) and from the units
// the served config wrote. Match them as substrings with [VM.WaitFor];
// [Line.Text] has systemd's colour codes removed.
const (
	MarkInit        = "live-init: start"
	MarkLease       = "live-init: lease "
	MarkFetchOK     = "live-init: ignition fetch ok"
	MarkFetchFailed = "live-init: ignition fetch failed"
	MarkFilesOK     = "live-init: ignition files ok"
	MarkInstalled   = "live-init: installed to "
	MarkDiskRoot    = "live-init: root from "
	MarkSwitchRoot  = "live-init: switching root"
	// MarkStopped ends the line of any failure of the initramfs.
	MarkStopped = "-- stopped; power cycle to retry"
	// MarkMultiUser is systemd reaching multi-user.target.
	MarkMultiUser = "Reached target multi-user.target"
	// MarkBootedUnit is systemd's line for the served config's booted unit
	// having run: the POST to the server succeeded.
	MarkBootedUnit = "Finished undercloud-booted.service"
)

// BootedBody is the JSON body of a booted report: what the served config's
// booted unit found Ignition wrote.
type BootedBody struct {
	// Digest is FilesDigest(Files).
	Digest string `json:"digest"`
	// Hostname is the first line of /etc/hostname as Ignition wrote it.
	Hostname string `json:"hostname"`
	// Files maps every path Ignition wrote to its sha256 (hex).
	Files map[string]string `json:"files"`
}

// FilesDigest is the digest a booted report gives for what Ignition wrote:
// the sha256 (hex) of the lines "<path> <sha256 hex>\n", one per file, sorted
// bytewise as whole lines (LC_ALL=C sort).
func FilesDigest(files map[string]string) string {
	lines := make([]string, 0, len(files))
	for p, h := range files {
		lines = append(lines, p+" "+h+"\n")
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "")))
	return hex.EncodeToString(sum[:])
}

// SHA256Hex is the hex sha256 of b, as the markers print it.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
