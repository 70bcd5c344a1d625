package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// fetchToNull GETs rawURL over a connection of its own from local and lets
// the kernel drop the body: it is spliced from the socket into /dev/null,
// never copied into the generator. The simulated machines' receiving then
// costs the two cores the servers share with the generator little more than
// TCP itself (a machine's receiving is not the server's work; read into a
// buffer, a storm of 1,000 copied 33.6 GB). It checks the status and that
// the body is as long as Content-Length says.
func fetchToNull(ctx context.Context, local net.IP, rawURL string, timeout time.Duration) (int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" {
		return 0, fmt.Errorf("GET %s: only http:// URLs", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "iPXE/1.21.1")
	req.Close = true
	if err := req.Write(c); err != nil {
		return 0, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", rawURL, resp.Status)
	}
	want := resp.ContentLength
	if want < 0 || len(resp.TransferEncoding) > 0 {
		return 0, fmt.Errorf("GET %s: no Content-Length", rawURL)
	}
	// What the header read took in already, then the rest by splice.
	n, err := io.CopyN(io.Discard, br, min(int64(br.Buffered()), want))
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", rawURL, n, err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0) // one each: a shared one serializes the splices
	if err != nil {
		return n, err
	}
	defer null.Close()
	m, err := null.ReadFrom(&io.LimitedReader{R: c, N: want - n})
	n += m
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", rawURL, n, err)
	}
	if n != want {
		return n, fmt.Errorf("GET %s: %d bytes, Content-Length %d", rawURL, n, want)
	}
	return n, nil
}
