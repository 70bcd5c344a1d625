package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// Store is the content-addressed image store: every artifact lives at
// Dir/sha256/<hex>, written once, after its digest was verified, and never
// rewritten. Import is safe for concurrent use, also by several processes
// sharing Dir. The zero value needs only Dir.
type Store struct {
	Dir string // root of the store
	// ArtifactRoot is the only directory local sources are read from:
	// relative paths are resolved against it, absolute paths and file://
	// URLs must lie inside it, and symbolic links must not lead out of it.
	// Empty refuses every local source: the server reads nothing of its own
	// file system because a site repo asked.
	ArtifactRoot string
	// MaxBytes caps an artifact whose catalog entry gives no size; 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// IdleTimeout abandons an http(s) source that sends nothing for this
	// long; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	Client      *http.Client // for http(s) sources; nil means NewClient()
	Log         *slog.Logger // nil means discard

	mu      sync.Mutex
	locks   map[string]chan struct{} // one per digest being imported
	touched map[string]time.Time     // digest -> last import, check or open; Collect spares these
}

// Has reports whether the artifact with digest is in the store.
func (s *Store) Has(digest string) bool {
	if !IsDigest(digest) {
		return false
	}
	st, err := os.Stat(s.path(digest))
	return err == nil && st.Mode().IsRegular()
}

// Open opens the artifact with digest for reading. An unknown digest (or a
// string that is not one) is an error wrapping fs.ErrNotExist.
func (s *Store) Open(digest string) (*os.File, error) {
	if !IsDigest(digest) {
		return nil, fmt.Errorf("open artifact %q: not a sha256 digest: %w", printable(digest), fs.ErrNotExist)
	}
	s.touch(digest)
	f, err := os.Open(s.path(digest))
	if err != nil {
		return nil, fmt.Errorf("open artifact sha256:%s: %w", digest, err)
	}
	return f, nil
}

func (s *Store) path(digest string) string { return filepath.Join(s.Dir, "sha256", digest) }

// touch records that digest is in use now, so Collect leaves it alone.
func (s *Store) touch(digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.touched == nil {
		s.touched = map[string]time.Time{}
	}
	s.touched[digest] = time.Now()
}

// limit is the most bytes a's source may have.
func (s *Store) limit(a sites.Artifact) int64 {
	switch {
	case a.Size > 0:
		return a.Size
	case s.MaxBytes > 0:
		return s.MaxBytes
	}
	return DefaultMaxBytes
}

// Import makes artifact a available, fetched from its source: a path inside
// ArtifactRoot (relative to it or absolute), a file:// URL inside it, or an
// http(s):// URL. An artifact already present is not fetched again, but its
// source must still be one the store may read. The content is streamed to
// a temporary file in Dir while being hashed, and only a verified, synced
// file is linked to its final name; on any error nothing is left behind.
func (s *Store) Import(ctx context.Context, a sites.Artifact) error {
	source, digest := a.Source(), a.SHA256
	if !IsDigest(digest) {
		return fmt.Errorf("import %s: %q is not a sha256 digest (64 lower-case hex digits)", redact(source), printable(digest))
	}
	if s.Dir == "" {
		return fmt.Errorf("import sha256:%s: the store has no directory", digest)
	}
	if err := s.checkSource(source); err != nil {
		return fmt.Errorf("import sha256:%s from %s: %w", digest, redact(source), err)
	}
	// Touched before looking, so a Collect either sees the mark or has
	// removed the file before Has looks (see Collect).
	s.touch(digest)
	if s.Has(digest) {
		return nil
	}
	unlock, err := s.lock(ctx, digest)
	if err != nil {
		return fmt.Errorf("import sha256:%s from %s: %w", digest, redact(source), err)
	}
	defer unlock()
	if s.Has(digest) { // imported while we waited
		return nil
	}
	n, err := s.fetch(ctx, source, digest, s.limit(a))
	if err != nil {
		return fmt.Errorf("import sha256:%s from %s: %w", digest, redact(source), err)
	}
	logger(s.Log).Info("artifact imported", "sha256", digest, "source", redact(source), "bytes", n)
	return nil
}

// Verify reads source through to its end and checks its digest, storing
// nothing: what a site repo's CI needs to catch a wrong digest without room
// for every image.
func (s *Store) Verify(ctx context.Context, a sites.Artifact) error {
	source, digest := a.Source(), a.SHA256
	src, err := s.open(ctx, source, s.limit(a))
	if err == nil {
		defer src.Close()
		_, err = copyVerified(ctx, io.Discard, src, digest, s.limit(a))
	}
	if err != nil {
		return fmt.Errorf("verify sha256:%s of %s: %w", digest, redact(source), err)
	}
	return nil
}

// open opens source and refuses it at once when its length is known and
// over limit.
func (s *Store) open(ctx context.Context, source string, limit int64) (io.ReadCloser, error) {
	src, n, err := s.openSource(ctx, source, limit)
	if err != nil {
		return nil, err
	}
	if n > limit {
		src.Close()
		return nil, tooLong(n, limit)
	}
	return src, nil
}

// copyVerified copies src to dst while hashing it, reading at most limit
// bytes, and fails when the content is not the one named by digest. The
// error names the expected digest only: the digest of what was read would
// tell whoever reads the gate's problems what a file holds.
func copyVerified(ctx context.Context, dst io.Writer, src io.Reader, digest string, limit int64) (int64, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), io.LimitReader(ctxReader{ctx, src}, limit+1))
	if err != nil {
		return n, fmt.Errorf("read: %w", err)
	}
	if n > limit {
		return n, fmt.Errorf("longer than %d bytes, the limit (the artifact's size, or --artifact-max-bytes)", limit)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("digest mismatch: the %d bytes read are not sha256:%s", n, digest)
	}
	return n, nil
}

// lock serialises imports of one digest within this process, so that
// concurrent callers fetch it once; waiting ends with ctx.
func (s *Store) lock(ctx context.Context, digest string) (func(), error) {
	for {
		s.mu.Lock()
		if s.locks == nil {
			s.locks = map[string]chan struct{}{}
		}
		held, busy := s.locks[digest]
		if !busy {
			ch := make(chan struct{})
			s.locks[digest] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.locks, digest)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// fetch copies source into the store under digest and returns its size.
func (s *Store) fetch(ctx context.Context, source, digest string, limit int64) (int64, error) {
	src, err := s.open(ctx, source, limit)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	dir := filepath.Join(s.Dir, "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("create store: %w", err)
	}
	tmp, err := os.CreateTemp(s.Dir, ".import-*")
	if err != nil {
		return 0, fmt.Errorf("create temporary file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the link, or on failure
	defer tmp.Close()
	n, err := copyVerified(ctx, tmp, src, digest, limit)
	if err != nil {
		return n, err
	}
	if err := tmp.Chmod(0o444); err != nil {
		return n, fmt.Errorf("chmod: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("close: %w", err)
	}
	// link(2), unlike rename(2), never replaces an existing name: if another
	// process stored the digest meanwhile, its file stays.
	if err := os.Link(tmp.Name(), s.path(digest)); err != nil && !errors.Is(err, fs.ErrExist) {
		return n, fmt.Errorf("store: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return n, err
	}
	return n, nil
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync store directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync store directory: %w", err)
	}
	return nil
}
