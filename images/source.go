package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Limits of a fetch, when the Store leaves them zero.
const (
	// DefaultMaxBytes caps an artifact whose catalog entry gives no size:
	// larger than any node image, small enough that a hostile or broken
	// source cannot fill the store's disk.
	DefaultMaxBytes int64 = 16 << 30
	// DefaultIdleTimeout is how long an http(s) source may send nothing
	// (connecting, before its headers, or mid-body) before it is abandoned.
	DefaultIdleTimeout = 60 * time.Second
)

// NewClient returns the HTTP client a Store uses when given none: bounded
// connect, TLS-handshake and response-header times, and no total timeout,
// since a multi-gigabyte rootfs may take long on a slow link. A source that
// stalls mid-body is caught by the Store's idle timeout instead.
func NewClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          8,
	}}
}

// errOutsideRoot and friends are the rules a local source breaks; the
// caller's error names the source.
var (
	errNoRoot      = errors.New("local artifact paths are refused: the server has no artifact root (--artifact-root)")
	errOutsideRoot = errors.New("outside the artifact root (--artifact-root): only files under it are read")
	errEscapes     = errors.New("resolves (through a symbolic link) outside the artifact root (--artifact-root)")
	errNotRegular  = errors.New("not a regular file")
)

// localPath returns the path a local source (absolute, relative or file://)
// names, and whether the source is local at all. It checks only the form:
// http(s) URLs are not local, other schemes are refused.
func localPath(source string) (p string, local bool, err error) {
	switch {
	case source == "":
		return "", false, errors.New("no source")
	case strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://"):
		return "", false, nil
	case strings.HasPrefix(source, "file://"):
		u, err := url.Parse(source)
		if err != nil {
			return "", true, fmt.Errorf("parse URL: %w", err)
		}
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return "", true, errors.New("a file:// URL names a local absolute path (file:///path)")
		}
		return u.Path, true, nil
	case strings.Contains(source, "://"):
		return "", false, errors.New("unsupported URL scheme: want http, https or file")
	case strings.ContainsRune(source, 0):
		return "", true, errors.New("a path with a NUL byte")
	}
	return source, true, nil
}

// checkSource checks that source is one the Store may read, from its form
// alone (nothing is opened): an http(s) URL, or a local path or file:// URL
// that lies inside ArtifactRoot. Import runs it even for an artifact it
// already has, so a catalog naming a forbidden source never passes the gate.
func (s *Store) checkSource(source string) error {
	p, local, err := localPath(source)
	if err != nil || !local {
		return err
	}
	if s.ArtifactRoot == "" {
		return errNoRoot
	}
	_, err = s.relative(p)
	return err
}

// relative returns p (absolute, or relative to ArtifactRoot) relative to
// ArtifactRoot, refusing any p that leaves it by its name (no file is
// looked at).
func (s *Store) relative(p string) (string, error) {
	if !filepath.IsAbs(p) {
		if !filepath.IsLocal(p) {
			return "", errOutsideRoot
		}
		return filepath.Clean(p), nil
	}
	root, err := filepath.Abs(s.ArtifactRoot)
	if err != nil {
		return "", fmt.Errorf("artifact root: %w", err)
	}
	rel, err := filepath.Rel(root, filepath.Clean(p))
	if err != nil || !filepath.IsLocal(rel) {
		// The root may itself be reached through a symbolic link
		// (/srv -> /data/srv): a path naming its resolved form is inside.
		real, rerr := filepath.EvalSymlinks(root)
		if rerr != nil {
			return "", errOutsideRoot
		}
		if rel, err = filepath.Rel(real, filepath.Clean(p)); err != nil || !filepath.IsLocal(rel) {
			return "", errOutsideRoot
		}
	}
	return rel, nil
}

// openLocal opens a local source confined to ArtifactRoot: the path must lie
// inside the root by its name, the file it resolves to (every symbolic link
// followed) must too, and the open itself goes through os.Root, so a link
// swapped in between cannot lead out either. Only regular files are read.
func (s *Store) openLocal(p string) (*os.File, int64, error) {
	if s.ArtifactRoot == "" {
		return nil, 0, errNoRoot
	}
	rel, err := s.relative(p)
	if err != nil {
		return nil, 0, err
	}
	root, err := filepath.EvalSymlinks(s.ArtifactRoot)
	if err != nil {
		return nil, 0, fmt.Errorf("artifact root: %w", err)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, rel))
	if err != nil {
		return nil, 0, errors.New("no such file under the artifact root")
	}
	if rel, err = filepath.Rel(root, real); err != nil || !filepath.IsLocal(rel) {
		return nil, 0, errEscapes
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, 0, fmt.Errorf("artifact root: %w", err)
	}
	defer r.Close()
	// Stat first: opening a FIFO would block.
	st, err := r.Stat(rel)
	if err != nil {
		return nil, 0, fmt.Errorf("open: %w", err) // resolved a moment ago: changed since
	}
	if !st.Mode().IsRegular() {
		return nil, 0, errNotRegular
	}
	f, err := r.Open(rel)
	if err != nil {
		return nil, 0, fmt.Errorf("open: %w", err)
	}
	return f, st.Size(), nil
}

// openSource opens what an image catalog entry points at and returns its
// length when known (-1 if not).
func (s *Store) openSource(ctx context.Context, source string, limit int64) (io.ReadCloser, int64, error) {
	p, local, err := localPath(source)
	switch {
	case err != nil:
		return nil, 0, err
	case local:
		f, n, err := s.openLocal(p)
		if err != nil {
			return nil, 0, err
		}
		return f, n, nil
	}
	return s.get(ctx, source, limit)
}

// errIdle ends a fetch whose source sent nothing for the idle timeout.
type errIdle time.Duration

func (e errIdle) Error() string {
	return fmt.Sprintf("the source sent nothing for %s", time.Duration(e))
}

// get starts an http(s) fetch. Its idle timer runs from before the request,
// so it bounds connecting and waiting for headers too (with any Client),
// and is reset by every byte of the body.
func (s *Store) get(ctx context.Context, source string, limit int64) (io.ReadCloser, int64, error) {
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(idle, func() { cancel(errIdle(idle)) })
	fail := func(err error) (io.ReadCloser, int64, error) {
		timer.Stop()
		if cause := context.Cause(ctx); errors.As(cause, new(errIdle)) {
			err = cause
		}
		cancel(nil)
		return nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return fail(fmt.Errorf("bad URL: %w", err))
	}
	resp, err := s.client().Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the caller already names the (redacted) source
		}
		return fail(fmt.Errorf("GET: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fail(fmt.Errorf("GET: %s", resp.Status))
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return fail(tooLong(resp.ContentLength, limit))
	}
	timer.Reset(idle)
	return &idleBody{ctx: ctx, cancel: cancel, timer: timer, idle: idle, body: resp.Body}, resp.ContentLength, nil
}

func (s *Store) client() *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Client == nil {
		s.Client = NewClient()
	}
	return s.Client
}

// idleBody is a response body whose every read with data restarts the idle
// timer; when the timer fires the request's context is cancelled and the
// read fails with errIdle rather than a bare "context canceled".
type idleBody struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
	body   io.ReadCloser
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); errors.As(cause, new(errIdle)) {
			err = cause
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}

// tooLong is the error for a source longer than the artifact may be.
func tooLong(n, limit int64) error {
	return fmt.Errorf("%d bytes, more than the limit of %d (the artifact's size, or --artifact-max-bytes)", n, limit)
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

// redact hides the password of a URL source in errors and logs.
func redact(source string) string {
	if u, err := url.Parse(source); err == nil && u.User != nil {
		return u.Redacted()
	}
	return source
}
