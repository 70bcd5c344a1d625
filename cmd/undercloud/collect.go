package main

import (
	"context"
	"time"

	"github.com/undercloud/undercloud/provision"
	"github.com/undercloud/undercloud/pxe"
)

const (
	// collectInterval is how often the image store drops the artifacts no
	// version needs any more.
	collectInterval = time.Hour
	// collectGrace is how long an artifact outlives the last version that
	// needed it: a boot token names its version for that long, so a machine
	// mid-boot on a version superseded an hour ago still finds its kernel.
	collectGrace = pxe.DefaultTokenTTL
)

// collectArtifacts runs the image store's garbage collection every interval
// until ctx ends.
func (s *server) collectArtifacts(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		keep, err := provision.ArtifactsToKeep(ctx, s.tracker, s.db, time.Now().Add(-collectGrace))
		if err != nil {
			// Safe side: without the full list of what may still boot,
			// nothing is removed.
			s.log.Warn("artifact collection skipped", "err", err)
			continue
		}
		if n, err := s.store.Collect(ctx, keep, collectGrace); err != nil {
			s.log.Error("artifact collection", "removed", n, "err", err)
		}
	}
}
