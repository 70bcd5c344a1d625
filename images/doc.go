// Package images is the content-addressed image store: every boot artifact
// a site version names (kernel, initrd, rootfs) is imported once, verified
// against its sha256, and served by digest. It is also the validation
// gate's artifact check (sites.ArtifactChecker), so a version that passes
// the gate has every artifact in the store and can be served at once.
package images

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/undercloud/undercloud/sites"
)

var _ sites.ArtifactChecker = (*Store)(nil)

// CheckArtifact is the gate's artifact check: it imports a, so that an
// accepted version can be served at once. A Store without a Dir only
// verifies the digest and keeps nothing: what `undercloud validate` needs in
// a site repo's CI, without room for every image.
func (s *Store) CheckArtifact(ctx context.Context, a sites.Artifact) error {
	if s.Dir == "" {
		return s.Verify(ctx, a)
	}
	return s.Import(ctx, a)
}

// IsDigest reports whether s is a sha256 digest as the store names
// artifacts: 64 lower-case hex digits.
func IsDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// printable quotes what a client sent for an error message, bounded.
func printable(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
