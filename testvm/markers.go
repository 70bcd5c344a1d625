package testvm

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// MarkerPrefix starts every line the test image's /init prints.
const MarkerPrefix = "UNDERCLOUD-TESTVM: "

// Serial markers of the test image (see the package documentation); match
// them as substrings with [VM.WaitFor].
const (
	MarkInit          = MarkerPrefix + "init"
	MarkLease         = MarkerPrefix + "lease "
	MarkFetchOK       = MarkerPrefix + "ignition fetch ok"
	MarkFetchFailed   = MarkerPrefix + "ignition fetch failed"
	MarkFilesOK       = MarkerPrefix + "ignition files ok"
	MarkFilesFailed   = MarkerPrefix + "ignition files failed"
	MarkWrote         = MarkerPrefix + "wrote "
	MarkHostname      = MarkerPrefix + "hostname="
	MarkBootedPosted  = MarkerPrefix + "booted posted version="
	MarkBootedFailed  = MarkerPrefix + "booted post failed"
	MarkDone          = MarkerPrefix + "done"
	MarkIdle          = MarkerPrefix + "idle"
	MarkLeaseFailed   = MarkerPrefix + "lease failed"
	markWroteSHA256At = " sha256="
)

// BootedBody is the JSON body the test image POSTs to undercloud.booted.
type BootedBody struct {
	// Digest is FilesDigest(Files).
	Digest string `json:"digest"`
	// Hostname is the first line of /etc/hostname as Ignition wrote it.
	Hostname string `json:"hostname"`
	// Files maps every path Ignition wrote to its sha256 (hex).
	Files map[string]string `json:"files"`
}

// FilesDigest is the digest the test image reports for what Ignition wrote:
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

// WrittenFiles collects the "wrote <path> sha256=<hex>" markers of one boot
// from console lines (pass the lines of that boot only).
func WrittenFiles(lines []Line) map[string]string {
	files := map[string]string{}
	for _, l := range lines {
		_, rest, ok := strings.Cut(l.Text, MarkWrote)
		if !ok {
			continue
		}
		i := strings.LastIndex(rest, markWroteSHA256At)
		if i < 0 {
			continue
		}
		files[rest[:i]] = strings.TrimSpace(rest[i+len(markWroteSHA256At):])
	}
	return files
}

// SHA256Hex is the hex sha256 of b, as the markers print it.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
