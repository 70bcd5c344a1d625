package images

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// storeFiles lists every file under dir (relative paths), to show that a
// failed import leaves nothing behind.
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// artifact is a catalog entry for source: a url when it has a scheme, else
// a path.
func artifact(source, digest string) sites.Artifact {
	if strings.Contains(source, "://") {
		return sites.Artifact{URL: source, SHA256: digest}
	}
	return sites.Artifact{Path: source, SHA256: digest}
}

func checkStored(t *testing.T, s *Store, digest string, want []byte) {
	t.Helper()
	if !s.Has(digest) {
		t.Fatalf("Has(%s) = false after import", digest)
	}
	f, err := s.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("stored %d bytes, want %d", len(got), len(want))
	}
}

func TestStoreImportSources(t *testing.T) {
	root := t.TempDir()
	data := testkit.RandomBytes(t, 300<<10)
	digest := testkit.SHA256Hex(data)
	if err := os.MkdirAll(filepath.Join(root, "fcos"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(root, "fcos", "kernel")
	if err := os.WriteFile(abs, data, 0o644); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kernel" {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer web.Close()

	for name, source := range map[string]string{
		"absolute path": abs,
		"relative path": "fcos/kernel",
		"file URL":      "file://" + abs,
		"http URL":      web.URL + "/kernel",
	} {
		t.Run(name, func(t *testing.T) {
			s := &Store{Dir: t.TempDir(), ArtifactRoot: root}
			if err := s.Import(context.Background(), artifact(source, digest)); err != nil {
				t.Fatal(err)
			}
			checkStored(t, s, digest, data)
			if diff := cmp.Diff([]string{"sha256/" + digest}, storeFiles(t, s.Dir)); diff != "" {
				t.Errorf("store files (-want +got):\n%s", diff)
			}
			st, _ := os.Stat(filepath.Join(s.Dir, "sha256", digest))
			if st.Mode().Perm()&0o222 != 0 {
				t.Errorf("stored artifact is writable: %v", st.Mode())
			}
		})
	}
}

func TestStoreImportRefuses(t *testing.T) {
	root := t.TempDir()
	data := []byte("the real kernel")
	path := filepath.Join(root, "kernel")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := testkit.SHA256Hex([]byte("another kernel"))
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/kernel"
	ln.Close()

	tests := map[string]struct {
		source, digest string
		root           string
		wantIn         []string // the error names these
	}{
		"wrong digest":         {path, wrong, root, []string{"not sha256:" + wrong, "15 bytes", path}},
		"wrong digest by URL":  {"file://" + path, wrong, root, []string{"not sha256:" + wrong, "file://" + path}},
		"not a digest":         {path, "abc", root, []string{"abc"}},
		"upper-case digest":    {path, strings.ToUpper(testkit.SHA256Hex(data)), root, []string{"not a sha256 digest"}},
		"missing file":         {filepath.Join(root, "nope"), testkit.SHA256Hex(data), root, []string{filepath.Join(root, "nope")}},
		"unreachable URL":      {closed, testkit.SHA256Hex(data), root, []string{closed, "refused"}},
		"HTTP 404":             {web.URL + "/kernel", testkit.SHA256Hex(data), root, []string{web.URL + "/kernel", "404"}},
		"relative, no root":    {"kernel", testkit.SHA256Hex(data), "", []string{"no artifact root"}},
		"relative, escaping":   {"../kernel", testkit.SHA256Hex(data), root, []string{"outside the artifact root"}},
		"other scheme":         {"ftp://x/kernel", testkit.SHA256Hex(data), root, []string{"ftp://x/kernel", "scheme"}},
		"file URL with a host": {"file://server/kernel", testkit.SHA256Hex(data), root, []string{"file://server/kernel"}},
		"password hidden":      {"http://user:secret@" + ln.Addr().String() + "/k", testkit.SHA256Hex(data), root, []string{"user:xxxxx@"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := &Store{Dir: t.TempDir(), ArtifactRoot: tc.root}
			err := s.Import(context.Background(), artifact(tc.source, tc.digest))
			if err == nil {
				t.Fatal("Import succeeded")
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows a password", err)
			}
			if strings.Contains(err.Error(), testkit.SHA256Hex(data)) && tc.digest != testkit.SHA256Hex(data) {
				t.Errorf("error %q shows the digest of the file read", err)
			}
			if files := storeFiles(t, s.Dir); len(files) != 0 {
				t.Errorf("a failed import left %v", files)
			}
			if s.Has(tc.digest) {
				t.Error("Has is true after a failed import")
			}
		})
	}
}

// An artifact already stored is never fetched again nor rewritten, even if
// (impossibly) its file differed from a new source.
func TestStoreNeverRewrites(t *testing.T) {
	data := []byte("kernel v1")
	digest := testkit.SHA256Hex(data)
	var hits atomic.Int32
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(data)
	}))
	defer web.Close()
	s := &Store{Dir: t.TempDir()}
	if err := s.Import(context.Background(), artifact(web.URL, digest)); err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(s.Dir, "sha256", digest)
	// Mark the stored file so a rewrite would show.
	if err := os.Chmod(final, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(final, []byte("marker"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(final)
	if err := s.Import(context.Background(), artifact(web.URL, digest)); err != nil {
		t.Fatal(err)
	}
	// A second store on the same directory (another process) behaves alike.
	if err := (&Store{Dir: s.Dir}).Import(context.Background(), artifact(web.URL, digest)); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("source fetched %d times, want 1", n)
	}
	after, _ := os.Stat(final)
	if got := testkit.ReadFile(t, final); string(got) != "marker" || !os.SameFile(before, after) {
		t.Errorf("stored artifact was rewritten: %q", got)
	}
}

// Concurrent imports of one artifact fetch it once, all succeed and leave
// exactly one file.
func TestStoreConcurrentImports(t *testing.T) {
	data := testkit.RandomBytes(t, 1<<20)
	digest := testkit.SHA256Hex(data)
	var hits atomic.Int32
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(100 * time.Millisecond) // keep the others waiting
		w.Write(data)
	}))
	defer web.Close()
	s := &Store{Dir: t.TempDir()}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Import(context.Background(), artifact(web.URL+"/kernel", digest))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("import %d: %v", i, err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("source fetched %d times, want 1", n)
	}
	checkStored(t, s, digest, data)
	if diff := cmp.Diff([]string{"sha256/" + digest}, storeFiles(t, s.Dir)); diff != "" {
		t.Errorf("store files (-want +got):\n%s", diff)
	}
}

// Separate stores on one directory (separate processes) racing on one digest
// all succeed, thanks to link(2) refusing to replace.
func TestStoreConcurrentStores(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "kernel")
	data := testkit.RandomBytes(t, 256<<10)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = (&Store{Dir: dir, ArtifactRoot: root}).Import(context.Background(), artifact(src, testkit.SHA256Hex(data)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("import %d: %v", i, err)
		}
	}
	checkStored(t, &Store{Dir: dir}, testkit.SHA256Hex(data), data)
	if diff := cmp.Diff([]string{"sha256/" + testkit.SHA256Hex(data)}, storeFiles(t, dir)); diff != "" {
		t.Errorf("store files (-want +got):\n%s", diff)
	}
}

// A stalled source is abandoned when the context ends.
func TestStoreImportTimeout(t *testing.T) {
	stall := make(chan struct{})
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer web.Close()
	defer close(stall)
	s := &Store{Dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := s.Import(ctx, artifact(web.URL, testkit.SHA256Hex([]byte("whole"))))
	if err == nil || !strings.Contains(err.Error(), web.URL) {
		t.Fatalf("Import = %v, want an error naming the source", err)
	}
	if files := storeFiles(t, s.Dir); len(files) != 0 {
		t.Errorf("a failed import left %v", files)
	}
}

func TestStoreOpenUnknown(t *testing.T) {
	if err := (&Store{}).Import(context.Background(), artifact("/etc/hostname", testkit.SHA256Hex(nil))); err == nil {
		t.Error("a store without a directory imported")
	}
	s := &Store{Dir: t.TempDir()}
	for _, d := range []string{testkit.SHA256Hex([]byte("x")), "../../etc/passwd", ""} {
		if _, err := s.Open(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want fs.ErrNotExist", d, err)
		}
		if s.Has(d) {
			t.Errorf("Has(%q) = true", d)
		}
	}
}
