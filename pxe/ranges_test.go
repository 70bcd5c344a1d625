package pxe

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/testvm/testkit"
)

func TestRangesOK(t *testing.T) {
	for name, tt := range map[string]struct {
		header string
		want   bool
	}{
		"one range":                {"bytes=0-99", true},
		"open range":               {"bytes=100-", true},
		"suffix":                   {"bytes=-100", true},
		"four disjoint":            {"bytes=0-9,20-29,40-49,-10", true},
		"adjacent":                 {"bytes=0-9,10-19", true},
		"five ranges":              {"bytes=0-0,2-2,4-4,6-6,8-8", false},
		"overlapping":              {"bytes=0-99,50-149", false},
		"same range twice":         {"bytes=0-0,0-0", false},
		"suffix overlaps open one": {"bytes=900-,-200", false},
		"unsatisfiable skipped":    {"bytes=0-9,5000-6000", true},
		"not bytes":                {"items=0-1,0-1", true},
		"unparsable left to Go":    {"bytes=x-y", true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := rangesOK(tt.header, 1000); got != tt.want {
				t.Errorf("rangesOK(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

// TestArtifactRangeAmplification asks a real server for an artifact with a
// Range header of thousands of overlapping one-byte ranges: it made a
// response dozens of times the header's size (multipart part headers), and
// is now refused with a bare 416. A few disjoint ranges are still served.
func TestArtifactRangeAmplification(t *testing.T) {
	e := newBootEnv(t)
	url := e.srv.URL + "/images/sha256/" + testkit.SHA256Hex(e.kernel)
	get := func(rng string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Range", rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	flood := "bytes=" + strings.TrimSuffix(strings.Repeat("0-0,", 20000), ",") // 80 kB of header
	resp, body := get(flood)
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || len(body) > 1024 {
		t.Errorf("overlapping ranges: HTTP %d with %d bytes, want a bare 416", resp.StatusCode, len(body))
	}
	if got, want := resp.Header.Get("Content-Range"), "bytes */409600"; got != want {
		t.Errorf("Content-Range = %q, want %q", got, want)
	}

	resp, body = get("bytes=0-9,100-109")
	if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("two disjoint ranges: HTTP %d %s, want 206 multipart", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(string(body), string(e.kernel[100:110])) {
		t.Error("multipart answer lacks the second range's bytes")
	}
	resp, body = get("bytes=1000-")
	if resp.StatusCode != http.StatusPartialContent || len(body) != len(e.kernel)-1000 {
		t.Errorf("open range: HTTP %d with %d bytes, want 206 with %d", resp.StatusCode, len(body), len(e.kernel)-1000)
	}
}
