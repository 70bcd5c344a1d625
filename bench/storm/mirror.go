package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The mirror case: the server's link is shaped to LinkRate (tc tbf on its
// veth), and two nginx caches, each in its own namespace behind its own
// link of the same rate, proxy_cache the server's /images/sha256/. The site
// declares mirrors by rack: racks r0, r3, r6… take the first cache, r1, r4,
// r7… the second, and r2, r5, r8… keep fetching from the server, so that
// the three links share the rack's bytes. Each rack's mirror URL is the
// cache's address with the rack as its path (http://10.0.0.11:8080/r0),
// because a site may not name the same mirror URL twice; the caches strip
// the path and key their cache on the digest alone, so every rack of a
// cache shares one copy.
//
// It runs the same storm against the server alone (no mirrors in the site,
// the same shaped link) and with the mirrors, Rounds times each, taking
// turns, and reports whether the mirrored storm took less than half as long.
func (r *runEnv) mirrorCase(ctx context.Context, w io.Writer) error {
	n := r.MirrorN
	ms, racks := machines(n)
	var caches []*mirrorCache
	var fills []string
	for i := 0; i < 2; i++ {
		ns, addr, err := r.topo.addMirror(ctx)
		if err != nil {
			return err
		}
		if err := limit(ctx, ns, "m0", r.LinkRate); err != nil {
			return err
		}
		caches = append(caches, &mirrorCache{ns: ns, addr: addr, dir: filepath.Join(r.work, fmt.Sprintf("mirror%d", i+1))})
		fills = append(fills, addr)
	}
	if !r.FillFirst {
		fills = nil
	}
	if err := limit(ctx, r.topo.Server, "s0", r.LinkRate, fills...); err != nil {
		return err
	}
	var mirrors []mirrorSpec
	for k := 0; k*rackSize < n; k++ {
		if c := k % 3; c < len(caches) {
			mirrors = append(mirrors, mirrorSpec{URL: fmt.Sprintf("http://%s:8080/r%d", caches[c].addr, k), Select: fmt.Sprintf("rack=r%d", k)})
		}
	}
	fmt.Fprintf(r.log, "bench-storm mirror case: N=%d, %d rounds, links of %s (server, 2 caches), %d racks: %d on cache 1, %d on cache 2, the rest on the server; cache fills first on the server's link: %v\n",
		n, r.Rounds, r.LinkRate, (n+rackSize-1)/rackSize, countMirrors(mirrors, caches[0].addr), countMirrors(mirrors, caches[1].addr), r.FillFirst)
	var rounds []roundResult
	for round := 1; round <= r.Rounds; round++ {
		if err := r.prepare(ctx, ms, racks, nil); err != nil {
			return err
		}
		alone, err := r.undercloudRound(ctx, ms, fmt.Sprintf("uc-alone-%d", round), false)
		if err != nil {
			return err
		}
		alone.Server = "server-only"
		fmt.Fprintln(r.log, roundLine(round, alone))
		if err := r.prepare(ctx, ms, racks, mirrors); err != nil {
			return err
		}
		for _, c := range caches {
			if err := c.start(ctx, r); err != nil {
				return err
			}
		}
		mirrored, err := r.undercloudRound(ctx, ms, fmt.Sprintf("uc-mirrored-%d", round), true)
		for _, c := range caches {
			hits := c.stop()
			if err == nil {
				fmt.Fprintf(r.log, "    cache %s: %s\n", c.addr, hits)
			}
		}
		if err != nil {
			return err
		}
		mirrored.Server = "mirrored"
		fmt.Fprintln(r.log, roundLine(round, mirrored))
		rounds = append(rounds, alone, mirrored)
	}
	report(w, n, rounds, "mirrored", "server-only", 0, 0)
	var a, m []float64
	failed := 0
	for _, rr := range rounds {
		if rr.Server == "mirrored" {
			m = append(m, rr.Total.Seconds())
		} else {
			a = append(a, rr.Total.Seconds())
		}
		failed += rr.Failed
		if rr.Check != nil && len(rr.Check.Problems) > 0 {
			failed++
		}
	}
	ratio := median(m) / median(a)
	verdict := "PASS"
	if ratio >= 0.5 || failed > 0 {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "  mirrored / server-only total time = %.2f (target < 0.50): %s\n", ratio, verdict)
	if verdict == "FAIL" {
		return fmt.Errorf("mirror case: ratio %.2f, %d failures", ratio, failed)
	}
	return nil
}

func countMirrors(ms []mirrorSpec, addr string) int {
	k := 0
	for _, m := range ms {
		if strings.Contains(m.URL, "//"+addr+":") {
			k++
		}
	}
	return k
}

// mirrorCache is one nginx proxy_cache in front of the server.
type mirrorCache struct {
	ns, addr, dir string
	p             *proc
}

// start runs nginx on a fresh cache. proxy_cache_lock makes concurrent
// misses of one digest wait for a single fetch from the server.
func (c *mirrorCache) start(ctx context.Context, r *runEnv) error {
	_ = os.RemoveAll(c.dir)
	if err := os.MkdirAll(filepath.Join(c.dir, "tmp"), 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
user root;
worker_processes auto;
worker_rlimit_nofile 16384;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	sendfile on;
	tcp_nopush on;
	proxy_cache_path %[1]s/cache levels=1:2 keys_zone=images:10m max_size=8g inactive=1d use_temp_path=off;
	server {
		listen %[2]s:8080 backlog=4096;
		location ~ "^(?:/r[0-9]+)?(/images/sha256/[0-9a-f]{64})$" {
			proxy_pass %[3]s$1;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache images;
			proxy_cache_key $1;
			proxy_cache_valid 200 1y;
			proxy_cache_lock on;
			proxy_cache_lock_timeout 5m;
			proxy_cache_lock_age 5m;
			add_header X-Cache $upstream_cache_status;
		}
		location = /healthz { return 200 "ok\n"; }
	}
}
`, c.dir, c.addr, bootBase)
	path := filepath.Join(c.dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	p, err := startIn(c.ns, filepath.Base(c.dir)+"-nginx", r.work, nil, "nginx", "-c", path, "-p", c.dir)
	if err != nil {
		return err
	}
	c.p = p
	client := nsClient(r.topo.Machines)
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := client.Get("http://" + c.addr + ":8080/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ok, perr := p.exited(); ok || time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop(2 * time.Second)
			return fmt.Errorf("mirror nginx %s not ready: %v %v\n%s", c.addr, err, perr, p.tail(2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops nginx and says how many requests it served and from where:
// requests in its access log (every one an image).
func (c *mirrorCache) stop() string {
	c.p.Stop(5 * time.Second)
	b, _ := os.ReadFile(filepath.Join(c.dir, "access.log"))
	lines := strings.Count(string(b), "\n")
	return fmt.Sprintf("%d image requests served", lines)
}
