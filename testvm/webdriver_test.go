package testvm_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/undercloud/undercloud/testvm"
)

// webDriver is a minimal W3C WebDriver client for Debian's chromedriver
// driving Debian's headless Chromium, both inside the lab namespace: the
// browser reaches the lab's server and nothing else.
type webDriver struct {
	t       *testing.T
	http    *http.Client
	base    string // chromedriver's URL
	session string
}

// elementKey is the W3C key of an element reference.
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

func startBrowser(t *testing.T, lab *testvm.Lab) *webDriver {
	t.Helper()
	for _, tool := range []struct{ bin, pkg string }{{"chromedriver", "chromium-driver"}, {"chromium", "chromium"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			t.Fatalf("%s not found (Debian package %s)", tool.bin, tool.pkg)
		}
	}
	if _, err := lab.Start("chromedriver", "chromedriver", "--port=9515"); err != nil {
		t.Fatal(err)
	}
	d := &webDriver{t: t, http: lab.HTTPClient(60 * time.Second), base: "http://127.0.0.1:9515"}
	waitFor(t, 20*time.Second, "chromedriver", func() bool {
		resp, err := d.http.Get(d.base + "/status")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	// The profile lives in the lab's directory, not in t.TempDir: Chromium
	// keeps writing to it for a moment after the session ends, and the lab
	// removes its directory only once chromedriver's process group is gone.
	profile := filepath.Join(lab.Dir, "chromium-profile")
	var s struct{ SessionID string }
	d.call(http.MethodPost, "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": "/usr/bin/chromium", "args": []string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--window-size=1400,1000", "--user-data-dir=" + profile,
			// The UI is served over HTTPS with the certificate the server
			// generated for itself, which no browser trusts.
			"--ignore-certificate-errors",
		}},
	}}}, &s)
	d.session = "/session/" + s.SessionID
	t.Cleanup(func() { d.call(http.MethodDelete, d.session, nil, nil) })
	return d
}

// call sends one WebDriver command and decodes its "value".
func (d *webDriver) call(method, path string, body, out any) {
	d.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var env struct{ Value json.RawMessage }
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &env); err != nil || resp.StatusCode >= 300 {
		d.t.Fatalf("webdriver %s %s: HTTP %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(env.Value, out); err != nil {
			d.t.Fatalf("webdriver %s %s: %v in %s", method, path, err, env.Value)
		}
	}
}

func (d *webDriver) open(url string) {
	d.call(http.MethodPost, d.session+"/url", map[string]string{"url": url}, nil)
}

func (d *webDriver) url() string {
	var u string
	d.call(http.MethodGet, d.session+"/url", nil, &u)
	return u
}

// find returns the element matching a CSS selector; it fails the test when
// there is none.
func (d *webDriver) find(css string) string {
	d.t.Helper()
	var el map[string]string
	d.call(http.MethodPost, d.session+"/element", map[string]string{"using": "css selector", "value": css}, &el)
	return el[elementKey]
}

// count returns how many elements match a CSS selector.
func (d *webDriver) count(css string) int {
	var els []map[string]string
	d.call(http.MethodPost, d.session+"/elements", map[string]string{"using": "css selector", "value": css}, &els)
	return len(els)
}

func (d *webDriver) text(css string) string {
	var s string
	d.call(http.MethodGet, d.session+"/element/"+d.find(css)+"/text", nil, &s)
	return s
}

func (d *webDriver) attr(css, name string) string {
	var s *string
	d.call(http.MethodGet, d.session+"/element/"+d.find(css)+"/attribute/"+name, nil, &s)
	if s == nil {
		return ""
	}
	return *s
}

func (d *webDriver) typeInto(css, text string) {
	d.call(http.MethodPost, d.session+"/element/"+d.find(css)+"/value", map[string]string{"text": text}, nil)
}

func (d *webDriver) click(css string) {
	d.call(http.MethodPost, d.session+"/element/"+d.find(css)+"/click", map[string]any{}, nil)
}

// screenshot saves the page as dir/name.png and returns the path.
func (d *webDriver) screenshot(dir, name string) string {
	d.t.Helper()
	var b64 string
	d.call(http.MethodGet, d.session+"/screenshot", nil, &b64)
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(png) < 1000 {
		d.t.Fatalf("screenshot %s: %v (%d bytes)", name, err, len(png))
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		d.t.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "screenshot: %s\n", p)
	return p
}
