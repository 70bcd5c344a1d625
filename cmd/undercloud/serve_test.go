package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	siterepo "github.com/undercloud/undercloud/examples/site-repo"
)

const testOperatorToken = "operator-token-0123456789"

// testServe is `undercloud serve` running in the test process for the
// example repo's lab site, on loopback ports of its own choosing.
type testServe struct {
	dataDir  string
	machine  string // http://127.0.0.1:port
	operator string // https://127.0.0.1:port
	log      *logLines
}

// logLines collects the server's JSON log lines.
type logLines struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []map[string]any
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadBytes('\n')
		if err != nil {
			l.buf.Write(line) // an incomplete line: keep it for the next write
			break
		}
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			l.lines = append(l.lines, m)
		}
	}
	return len(p), nil
}

// find returns the first line with msg.
func (l *logLines) find(msg string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

func startServe(t *testing.T, extra ...string) *testServe {
	t.Helper()
	dir := t.TempDir()
	repo, err := siterepo.Build(filepath.Join(dir, "site-repo"), siterepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(secrets, []byte("api_tokens:\n  - {name: alice, role: operator, token: "+testOperatorToken+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &testServe{dataDir: filepath.Join(dir, "data"), log: &logLines{}}
	args := append([]string{"--repo", repo.Dir, "--data-dir", s.dataDir, "--sites", "lab",
		"--artifact-root", filepath.Join(dir, "site-repo-artifacts"), "--dhcp=false", "--tftp-listen", "",
		"--listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0", "--secrets", secrets,
		"--log-format", "json", "--log-level", "debug", "--refresh", "1h"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, args, io.Discard, s.log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30 s of its context ending")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := s.log.find("undercloud serving"); m != nil {
			s.machine = "http://" + m["http"].(string)
			s.operator = m["operator"].(string)
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, s.log.buf.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not start within 30 s")
		}
	}
}

// operatorClient trusts the server's generated certificate, and nothing else.
func (s *testServe) operatorClient(t *testing.T) *http.Client {
	t.Helper()
	c, err := httpClient(filepath.Join(s.dataDir, generatedCert))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, c *http.Client, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeListeners: the machine-facing listener carries the boot endpoints
// and /healthz and nothing of the operator's; the operator listener serves
// the UI, API and /metrics over TLS, with a self-signed certificate
// generated into the data dir whose fingerprint is logged, and the CLI
// reaches it with --ca.
func TestServeListeners(t *testing.T) {
	s := startServe(t)
	plain := &http.Client{Timeout: 10 * time.Second}
	bearer := []string{"Authorization", "Bearer " + testOperatorToken}

	if !strings.HasPrefix(s.operator, "https://") {
		t.Fatalf("operator address %q, want https", s.operator)
	}
	for path, want := range map[string]int{
		"/healthz":          http.StatusOK,
		"/boot.ipxe":        http.StatusOK,
		"/api/v1/machines":  http.StatusNotFound,
		"/api/openapi.json": http.StatusNotFound,
		"/metrics":          http.StatusNotFound,
		"/login":            http.StatusNotFound,
		"/":                 http.StatusNotFound,
	} {
		if code, _ := get(t, plain, s.machine+path, bearer...); code != want {
			t.Errorf("machine listener GET %s: HTTP %d, want %d", path, code, want)
		}
	}

	op := s.operatorClient(t)
	for path, want := range map[string]int{
		"/healthz":                    http.StatusOK,
		"/api/v1/machines":            http.StatusOK,
		"/metrics":                    http.StatusOK,
		"/login":                      http.StatusOK,
		"/boot.ipxe":                  http.StatusNotFound,
		"/ipxe?mac=52:54:00:99:00:21": http.StatusNotFound,
	} {
		if code, _ := get(t, op, s.operator+path, bearer...); code != want {
			t.Errorf("operator listener GET %s: HTTP %d, want %d", path, code, want)
		}
	}
	// Without trusting the certificate there is no connection, and plain
	// HTTP gets no API.
	if _, err := plain.Get(s.operator + "/healthz"); err == nil {
		t.Error("the operator listener answered a client that does not trust its certificate")
	}
	if code, _ := get(t, plain, "http://"+strings.TrimPrefix(s.operator, "https://")+"/api/v1/machines", bearer...); code == http.StatusOK {
		t.Error("the operator listener served the API over plain HTTP")
	}

	// The logged fingerprint is the certificate's, which names 127.0.0.1
	// and localhost and is an ECDSA key.
	pemBytes, err := os.ReadFile(filepath.Join(s.dataDir, generatedCert))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	m := s.log.find("operator TLS certificate")
	if m == nil {
		t.Fatal("no fingerprint logged")
	}
	sum := sha256.Sum256(cert.Raw)
	if got, want := m["sha256"], strings.ToUpper(strings.Join(hexPairs(sum[:]), ":")); got != want {
		t.Errorf("logged fingerprint %v, want %s", got, want)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA || cert.VerifyHostname("127.0.0.1") != nil || cert.VerifyHostname("localhost") != nil {
		t.Errorf("certificate: %v key for %v %v", cert.PublicKeyAlgorithm, cert.DNSNames, cert.IPAddresses)
	}
	if st, err := os.Stat(filepath.Join(s.dataDir, generatedKey)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, st.Mode())
	}

	// A login over TLS sets Secure cookies.
	resp, err := op.Get(s.operator + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s over TLS is not Secure", c.Name)
		}
	}

	// The CLI, with the certificate named by --ca.
	var stdout, stderr bytes.Buffer
	if err := runStatus(context.Background(), []string{"--server", s.operator, "--token", testOperatorToken,
		"--ca", filepath.Join(s.dataDir, generatedCert)}, &stdout, &stderr); err != nil {
		t.Fatalf("undercloud status: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "site lab") {
		t.Errorf("undercloud status printed:\n%s", stdout.String())
	}
}

func hexPairs(b []byte) []string {
	out := make([]string, len(b))
	for i, c := range b {
		out[i] = fmt.Sprintf("%02x", c)
	}
	return out
}

// raiseFileLimit makes room for n more open files in the test process.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Fatalf("open-file limit %d (hard), the test needs %d: raise it (ulimit -Hn)", lim.Max, n)
	}
	old := lim
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// TestServeIdleConnectionFlood opens 5,000 TCP connections from one client
// (127.0.0.2) to the machine-facing listener and sends nothing on them.
// They used to be held for ever, each a file descriptor, until the server
// had none left. Now the server holds at most --max-conns-per-ip of them and
// closes the rest at once; /healthz, asked from another address, answers
// within a second throughout; the held ones are closed once their request
// header is overdue (10 s).
func TestServeIdleConnectionFlood(t *testing.T) {
	const conns, perIP = 5000, 32
	raiseFileLimit(t, 3*conns)
	s := startServe(t, "--max-conns-per-ip", fmt.Sprint(perIP), "--log-level", "info")
	addr := strings.TrimPrefix(s.machine, "http://")
	healthz := func() time.Duration {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		t0 := time.Now()
		if code, _ := get(t, c, s.machine+"/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz: HTTP %d", code)
		}
		return time.Since(t0)
	}

	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	open := make([]net.Conn, conns)
	var dialErrs int
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	start := time.Now()
	stopProbe := make(chan struct{})
	var worst time.Duration
	probed := make(chan struct{})
	go func() { // /healthz while the flood is under way
		defer close(probed)
		for {
			select {
			case <-stopProbe:
				return
			case <-time.After(100 * time.Millisecond):
			}
			worst = max(worst, healthz())
		}
	}()
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				mu.Lock()
				dialErrs++
				mu.Unlock()
				return
			}
			open[i] = c
		}()
	}
	wg.Wait()
	dialed := time.Since(start)
	close(stopProbe)
	<-probed
	defer func() {
		for _, c := range open {
			if c != nil {
				c.Close()
			}
		}
	}()

	// A refused connection reads EOF (or a reset) at once; a held one
	// blocks until its header is overdue. All are asked at once, well
	// within that.
	var held, refused int
	readBy := time.Now().Add(500 * time.Millisecond)
	for _, c := range open {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(readBy)
			_, err := c.Read(make([]byte, 1))
			mu.Lock()
			defer mu.Unlock()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				held++
			} else {
				refused++
			}
		}()
	}
	wg.Wait()
	after := healthz()
	t.Logf("%d connections from one client in %s: %d held, %d closed at once, %d dials failed; /healthz took at most %s during the flood, %s after",
		conns, dialed.Round(time.Millisecond), held, refused, dialErrs, worst.Round(time.Microsecond), after.Round(time.Microsecond))
	if held > perIP {
		t.Errorf("the server holds %d idle connections of one client, want at most %d", held, perIP)
	}
	if worst > time.Second || after > time.Second {
		t.Errorf("/healthz took %s during the flood and %s after, want under 1 s", worst, after)
	}

	// The server counted them.
	_, metrics := get(t, s.operatorClient(t), s.operator+"/metrics")
	var refusedMetric float64
	sc := bufio.NewScanner(strings.NewReader(metrics))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `undercloud_http_connections_refused_total{listener="machine"}`) {
			fmt.Sscan(strings.Fields(sc.Text())[1], &refusedMetric)
		}
	}
	if int(refusedMetric) < refused {
		t.Errorf("undercloud_http_connections_refused_total{listener=\"machine\"} = %v, want at least %d", refusedMetric, refused)
	}

	// The held connections never sent a header: they go after
	// ReadHeaderTimeout, and the client's slots with them.
	deadline := time.Now().Add(readHeaderTimeout + 5*time.Second)
	for _, c := range open {
		if c == nil {
			continue
		}
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("an idle connection is still held %s after the flood", time.Since(start).Round(time.Second))
			}
		}
	}
	c, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Errorf("the flooding client, once its connections expired: %q %v; want 200", line, err)
	}
}
