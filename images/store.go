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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Store is the content-addressed image store: every artifact lives at
// Dir/sha256/<hex>, written once, after its digest was verified, and never
// rewritten. Import is safe for concurrent use, also by several processes
// sharing Dir. The zero value needs only Dir.
type Store struct {
	Dir string // root of the store
	// ArtifactRoot is the directory relative artifact paths of the image
	// catalog are read from; empty refuses relative paths.
	ArtifactRoot string
	Client       *http.Client // for http(s) sources; nil means http.DefaultClient (bounded by ctx)
	Log          *slog.Logger // nil means discard

	mu    sync.Mutex
	locks map[string]chan struct{} // one per digest being imported
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
	f, err := os.Open(s.path(digest))
	if err != nil {
		return nil, fmt.Errorf("open artifact sha256:%s: %w", digest, err)
	}
	return f, nil
}

func (s *Store) path(digest string) string { return filepath.Join(s.Dir, "sha256", digest) }

// Import makes the artifact with digest available, fetched from source: an
// absolute path, a path relative to ArtifactRoot, a file:// URL or an
// http(s):// URL. An artifact already present is not fetched again. The
// content is streamed to a temporary file in Dir while being hashed, and
// only a verified, synced file is linked to its final name; on any error
// nothing is left behind.
func (s *Store) Import(ctx context.Context, source, digest string) error {
	if !IsDigest(digest) {
		return fmt.Errorf("import %s: %q is not a sha256 digest (64 lower-case hex digits)", redact(source), digest)
	}
	if s.Dir == "" {
		return fmt.Errorf("import sha256:%s: the store has no directory", digest)
	}
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
	n, err := s.fetch(ctx, source, digest)
	if err != nil {
		return fmt.Errorf("import sha256:%s from %s: %w", digest, redact(source), err)
	}
	logger(s.Log).Info("artifact imported", "sha256", digest, "source", redact(source), "bytes", n)
	return nil
}

// Verify reads source through to its end and checks its digest, storing
// nothing: what a site repo's CI needs to catch a wrong digest without room
// for every image.
func (s *Store) Verify(ctx context.Context, source, digest string) error {
	src, err := s.openSource(ctx, source)
	if err == nil {
		defer src.Close()
		_, err = copyVerified(ctx, io.Discard, src, digest)
	}
	if err != nil {
		return fmt.Errorf("verify sha256:%s of %s: %w", digest, redact(source), err)
	}
	return nil
}

// copyVerified copies src to dst while hashing it and fails when the content
// is not the one named by digest.
func copyVerified(ctx context.Context, dst io.Writer, src io.Reader, digest string) (int64, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), ctxReader{ctx, src})
	if err != nil {
		return n, fmt.Errorf("read: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("digest mismatch: expected sha256:%s, got sha256:%s (%d bytes)", digest, got, n)
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
func (s *Store) fetch(ctx context.Context, source, digest string) (int64, error) {
	src, err := s.openSource(ctx, source)
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
	n, err := copyVerified(ctx, tmp, src, digest)
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

// openSource opens what an image catalog entry points at.
func (s *Store) openSource(ctx context.Context, source string) (io.ReadCloser, error) {
	switch {
	case strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://"):
		return s.get(ctx, source)
	case strings.HasPrefix(source, "file://"):
		u, err := url.Parse(source)
		if err != nil {
			return nil, fmt.Errorf("parse URL: %w", err)
		}
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return nil, errors.New("a file:// URL names a local absolute path (file:///path)")
		}
		return os.Open(u.Path)
	case filepath.IsAbs(source):
		return os.Open(source)
	case strings.Contains(source, "://"):
		return nil, errors.New("unsupported URL scheme: want http, https or file")
	case source == "":
		return nil, errors.New("no source")
	}
	if s.ArtifactRoot == "" {
		return nil, errors.New("relative path, but no artifact root is configured")
	}
	if !filepath.IsLocal(source) {
		return nil, errors.New("relative path leaves the artifact root")
	}
	return os.Open(filepath.Join(s.ArtifactRoot, source))
}

func (s *Store) get(ctx context.Context, source string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the caller already names the (redacted) source
		}
		return nil, fmt.Errorf("GET: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET: %s", resp.Status)
	}
	return resp.Body, nil
}

// ctxReader stops a copy when ctx ends, for sources (files) that do not
// watch it themselves.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
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

// redact hides the password of a URL source in errors and logs.
func redact(source string) string {
	if u, err := url.Parse(source); err == nil && u.User != nil {
		return u.Redacted()
	}
	return source
}
