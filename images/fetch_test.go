package images

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// A source longer than the artifact's size, or than the store's cap when
// the catalog gives none, is refused, with or without a Content-Length,
// and nothing is stored.
func TestStoreSizeCap(t *testing.T) {
	data := testkit.RandomBytes(t, 1000)
	digest := testkit.SHA256Hex(data)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" { // no Content-Length: the cap must hold while reading
			w.Write(data[:500])
			w.(http.Flusher).Flush()
			w.Write(data[500:])
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}))
	defer web.Close()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "kernel"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		source   string
		size     int64 // on the catalog entry
		maxBytes int64 // of the store
		ok       bool
	}{
		"exact size":              {web.URL + "/k", 1000, 0, true},
		"size too small":          {web.URL + "/k", 999, 0, false},
		"size too small, chunked": {web.URL + "/chunked", 999, 0, false},
		"store cap":               {web.URL + "/k", 0, 999, false},
		"store cap, chunked":      {web.URL + "/chunked", 0, 999, false},
		"size wins over the cap":  {web.URL + "/chunked", 1000, 10, true},
		"under the cap":           {web.URL + "/chunked", 0, 1000, true},
		"file over its size":      {"kernel", 999, 0, false},
		"file under the cap":      {"kernel", 0, 1000, true},
		"file over the cap":       {"kernel", 0, 999, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := artifact(tc.source, digest)
			a.Size = tc.size
			s := &Store{Dir: t.TempDir(), ArtifactRoot: root, MaxBytes: tc.maxBytes}
			err := s.Import(context.Background(), a)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				checkStored(t, s, digest, data)
				return
			}
			if err == nil || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("Import = %v, want a refusal naming the limit", err)
			}
			if !strings.Contains(err.Error(), tc.source) {
				t.Errorf("error %q does not name the source", err)
			}
			if files := storeFiles(t, s.Dir); len(files) != 0 {
				t.Errorf("a refused import left %v", files)
			}
			// The same for the CI's verify-only store.
			if err := (&Store{ArtifactRoot: root, MaxBytes: tc.maxBytes}).Verify(context.Background(), a); err == nil {
				t.Error("Verify accepted it")
			}
		})
	}
}

// A source that stalls is abandoned after the idle timeout, not after a
// total timeout: one that sends headers and then nothing, one that accepts
// the connection and never answers, and one that sends a little and
// stalls. The test's context only bounds a broken implementation.
func TestStoreIdleTimeout(t *testing.T) {
	stall := make(chan struct{})
	defer close(stall)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/some" {
			w.Write([]byte("partial"))
		}
		w.(http.Flusher).Flush() // the headers go out
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer web.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts (the kernel does), never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	const idle = 300 * time.Millisecond
	for name, source := range map[string]string{
		"headers then nothing":  web.URL + "/headers",
		"some bytes then stall": web.URL + "/some",
		"never answers":         "http://" + silent.Addr().String() + "/kernel",
	} {
		t.Run(name, func(t *testing.T) {
			s := &Store{Dir: t.TempDir(), IdleTimeout: idle}
			ctx, cancel := context.WithTimeout(context.Background(), 20*idle)
			defer cancel()
			start := time.Now()
			err := s.Import(ctx, artifact(source, testkit.SHA256Hex([]byte("whole"))))
			took := time.Since(start)
			if err == nil {
				t.Fatal("Import succeeded")
			}
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				t.Fatalf("Import ran into the test's deadline after %s: %v", took, err)
			}
			if !strings.Contains(err.Error(), "sent nothing for "+idle.String()) || !strings.Contains(err.Error(), source) {
				t.Errorf("error %q does not name the source and the idle timeout", err)
			}
			if took > 5*idle {
				t.Errorf("abandoned after %s, idle timeout %s", took, idle)
			}
			if files := storeFiles(t, s.Dir); len(files) != 0 {
				t.Errorf("a failed import left %v", files)
			}
		})
	}
}

// A slow source that keeps sending is not cut by the idle timeout.
func TestStoreIdleTimeoutSparesSlowSource(t *testing.T) {
	data := testkit.RandomBytes(t, 8<<10)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(data); i += 1 << 10 {
			w.Write(data[i : i+1<<10])
			w.(http.Flusher).Flush()
			time.Sleep(30 * time.Millisecond) // 8 chunks: longer in total than the idle timeout
		}
	}))
	defer web.Close()
	s := &Store{Dir: t.TempDir(), IdleTimeout: 150 * time.Millisecond}
	if err := s.Import(context.Background(), artifact(web.URL, testkit.SHA256Hex(data))); err != nil {
		t.Fatal(err)
	}
	checkStored(t, s, testkit.SHA256Hex(data), data)
}

// Collect removes what no version keeps once it is older than the grace
// period, and spares what is kept, recent, or touched lately.
func TestStoreCollect(t *testing.T) {
	root := t.TempDir()
	dir := t.TempDir()
	names := []string{"kept", "old", "recent", "opened", "imported"}
	digests := map[string]string{}
	s := &Store{Dir: dir, ArtifactRoot: root}
	for _, n := range names {
		b := []byte("artifact " + n)
		digests[n] = testkit.SHA256Hex(b)
		if err := os.WriteFile(filepath.Join(root, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Import(context.Background(), sites.Artifact{Path: n, SHA256: digests[n]}); err != nil {
			t.Fatal(err)
		}
	}
	const grace = time.Hour
	old := time.Now().Add(-2 * grace)
	for _, n := range []string{"kept", "old", "opened", "imported"} {
		if err := os.Chtimes(s.path(digests[n]), old, old); err != nil {
			t.Fatal(err)
		}
	}
	// Leftovers of imports: one that died long ago, one under way.
	for name, mtime := range map[string]time.Time{".import-dead": old, ".import-live": time.Now()} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}

	// A restarted server: a new Store on the same directory, which has
	// touched nothing yet but what it serves or imports now.
	s = &Store{Dir: dir, ArtifactRoot: root}
	f, err := s.Open(digests["opened"])
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := s.Import(context.Background(), sites.Artifact{Path: "imported", SHA256: digests["imported"]}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Collect(context.Background(), map[string]bool{digests["kept"]: true}, grace)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("Collect removed %d, want 1", n)
	}
	want := []string{".import-live"}
	for _, n := range []string{"kept", "recent", "opened", "imported"} {
		want = append(want, "sha256/"+digests[n])
	}
	got := storeFiles(t, dir)
	if diff := cmp.Diff(sorted(want), sorted(got)); diff != "" {
		t.Errorf("store files after Collect (-want +got):\n%s", diff)
	}

	// Collected, the artifact is imported again when a version needs it.
	if err := s.Import(context.Background(), sites.Artifact{Path: "old", SHA256: digests["old"]}); err != nil {
		t.Fatal(err)
	}
	if !s.Has(digests["old"]) {
		t.Error("a collected artifact was not imported again")
	}
	// With no grace period, everything not kept goes, touched or not.
	if _, err := (&Store{Dir: dir}).Collect(context.Background(), map[string]bool{digests["kept"]: true}, 0); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"sha256/" + digests["kept"]}, storeFiles(t, dir)); diff != "" {
		t.Errorf("store files after Collect with no grace (-want +got):\n%s", diff)
	}
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// Digests gathers every artifact a release boots, its discovery image too.
func TestDigests(t *testing.T) {
	d := func(c string) string { return strings.Repeat(c, 64) }
	im := &sites.Image{Artifacts: sites.Artifacts{Kernel: sites.Artifact{SHA256: d("1")}, Initrd: sites.Artifact{SHA256: d("2")},
		Rootfs: &sites.Artifact{SHA256: d("3")}}}
	disc := &sites.Image{Artifacts: sites.Artifacts{Kernel: sites.Artifact{SHA256: d("4")}, Initrd: sites.Artifact{SHA256: d("2")}}}
	keep := map[string]bool{}
	Digests(keep, &sites.Release{Image: im, Discovery: disc})
	Digests(keep, &sites.Release{Image: im})
	want := map[string]bool{d("1"): true, d("2"): true, d("3"): true, d("4"): true}
	if diff := cmp.Diff(want, keep); diff != "" {
		t.Errorf("digests (-want +got):\n%s", diff)
	}
}
