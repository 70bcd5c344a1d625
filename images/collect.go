package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// Digests adds to keep the digest of every artifact of the images r boots
// (its image and its discovery image): what a caller of Collect keeps for
// each version a machine may still boot.
func Digests(keep map[string]bool, r *sites.Release) {
	for _, im := range []*sites.Image{r.Image, r.Discovery} {
		if im == nil {
			continue
		}
		for _, a := range im.Artifacts.List() {
			keep[a.SHA256] = true
		}
	}
}

// Collect removes the stored artifacts that no version needs any more:
// every artifact whose digest is not in keep, whose file is older than
// grace and which no Import or Open of this Store touched within grace.
// Temporary files of imports that died (a crash mid-fetch) older than grace
// go too. It returns how many artifacts it removed.
//
// The grace period is the safety margin: an artifact imported for a
// version the gate is checking right now, or served to a machine booting
// a version the caller forgot, is spared. Collect takes each digest's
// import lock, and decides and removes under the store's mutex, so a
// concurrent Import either sees the file gone and fetches it again, or
// touched it first and Collect leaves it.
func (s *Store) Collect(ctx context.Context, keep map[string]bool, grace time.Duration) (int, error) {
	if s.Dir == "" {
		return 0, nil
	}
	if grace < 0 {
		return 0, fmt.Errorf("collect artifacts: negative grace period %s", grace)
	}
	cutoff := time.Now().Add(-grace)
	entries, err := os.ReadDir(filepath.Join(s.Dir, "sha256"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, s.collectTemps(cutoff)
	}
	if err != nil {
		return 0, fmt.Errorf("collect artifacts: %w", err)
	}
	removed := 0
	for _, e := range entries {
		digest := e.Name()
		if !IsDigest(digest) || keep[digest] || !e.Type().IsRegular() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		gone, n, err := s.collect(ctx, digest, cutoff)
		if err != nil {
			return removed, fmt.Errorf("collect artifact sha256:%s: %w", digest, err)
		}
		if gone {
			removed++
			logger(s.Log).Info("artifact removed: no version needs it", "sha256", digest, "bytes", n)
		}
	}
	if removed > 0 {
		if err := syncDir(filepath.Join(s.Dir, "sha256")); err != nil {
			return removed, err
		}
	}
	return removed, s.collectTemps(cutoff)
}

// collect removes one artifact if it is older than cutoff and untouched
// since.
func (s *Store) collect(ctx context.Context, digest string, cutoff time.Time) (bool, int64, error) {
	unlock, err := s.lock(ctx, digest)
	if err != nil {
		return false, 0, err
	}
	defer unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.touched[digest]; ok && t.After(cutoff) {
		return false, 0, nil
	}
	st, err := os.Lstat(s.path(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil // another process collected it
	}
	if err != nil {
		return false, 0, err
	}
	if st.ModTime().After(cutoff) {
		return false, 0, nil
	}
	if err := os.Remove(s.path(digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, 0, err
	}
	delete(s.touched, digest)
	return true, st.Size(), nil
}

// collectTemps removes the temporary files of imports older than cutoff: an
// import in progress writes to its file all the time.
func (s *Store) collectTemps(cutoff time.Time) error {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("collect artifacts: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".import-") || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || info.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(s.Dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("collect artifacts: %w", err)
		}
		logger(s.Log).Info("stale import file removed", "file", e.Name(), "bytes", info.Size())
	}
	return nil
}
