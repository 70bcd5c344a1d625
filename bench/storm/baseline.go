package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The baseline is what a careful operator would run without undercloud:
// dnsmasq answering the relayed DHCP with static reservations, and nginx
// serving the same bytes -- the chain script, a static script per MAC, the
// same kernel and initrd at the same /images/sha256/<hex> paths, one static
// Ignition config -- and answering POST /booted with 204. The machines make
// the same requests and move the same bytes as against undercloud.

// writeBaselineTree writes nginx's document root: boot.ipxe, ipxe/<mac>.ipxe
// per machine, images/sha256/<hex> (hard links to the artifacts) and
// ignition.json (config, with a per-boot env file naming /booted added).
func writeBaselineTree(root, artifactDir string, ms []machineSpec, as []artifact, config []byte) error {
	for _, d := range []string{"ipxe", "images/sha256"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	chain := "#!ipxe\n:retry\nchain " + bootBase + "/ipxe?mac=${mac}&uuid=${uuid}&serial=${serial:uristring}&arch=${buildarch}&platform=${platform} || goto failed\nexit\n" +
		":failed\necho no boot script, trying again in 5 s\nsleep 5\ngoto retry\n"
	if err := os.WriteFile(filepath.Join(root, "boot.ipxe"), []byte(chain), 0o644); err != nil {
		return err
	}
	byName := map[string]artifact{}
	for _, a := range as {
		byName[a.Name] = a
		dst := filepath.Join(root, "images/sha256", a.SHA256)
		_ = os.Remove(dst)
		if err := os.Link(filepath.Join(artifactDir, a.Path), dst); err != nil {
			return err
		}
	}
	for _, m := range ms {
		img := func(name string) string { return bootBase + "/images/sha256/" + byName[name].SHA256 + "?mac=" + m.MAC }
		args := "initrd=initrd console=ttyS0 quiet"
		if r, ok := byName["rootfs"]; ok {
			args += " coreos.live.rootfs_url=" + bootBase + "/images/sha256/" + r.SHA256
		}
		s := fmt.Sprintf("#!ipxe\n# baseline: %s (%s)\nkernel %s %s ignition.config.url=%s/ignition?mac=%s\ninitrd --name initrd %s\nboot\n",
			m.Name, m.MAC, img("kernel"), args, bootBase, m.MAC, img("initrd"))
		if err := os.WriteFile(filepath.Join(root, "ipxe", m.MAC+".ipxe"), []byte(s), 0o644); err != nil {
			return err
		}
	}
	cfg, err := withReportFile(config, bootBase+"/booted?baseline=1")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "ignition.json"), cfg, 0o644)
}

// withReportFile adds /etc/undercloud/report.env naming the booted URL to
// an Ignition config, as the served configs carry it.
func withReportFile(config []byte, booted string) ([]byte, error) {
	var c map[string]any
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("rendered config: %w", err)
	}
	storage, _ := c["storage"].(map[string]any)
	if storage == nil {
		storage = map[string]any{}
		c["storage"] = storage
	}
	files, _ := storage["files"].([]any)
	env := "UNDERCLOUD_BOOTED_URL=" + booted + "\n"
	files = append(files, map[string]any{
		"path": "/etc/undercloud/report.env", "mode": 0o600,
		"contents": map[string]any{"source": "data:;base64," + base64.StdEncoding.EncodeToString([]byte(env))},
	})
	storage["files"] = files
	return json.Marshal(c)
}

// baseline is dnsmasq and nginx for one round.
type baseline struct {
	dnsmasq, nginx *proc
}

// startBaseline writes the configs (fresh lease file) and starts both in
// the server namespace, waiting until nginx answers.
func startBaseline(ctx context.Context, r *runEnv, ms []machineSpec, name string) (*baseline, error) {
	dir := filepath.Join(r.work, name)
	if err := os.MkdirAll(filepath.Join(dir, "nginx-tmp"), 0o755); err != nil {
		return nil, err
	}
	var hosts strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&hosts, "%s,%s\n", m.MAC, m.IP)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		return nil, err
	}
	dconf := strings.Join([]string{
		"port=0",    // no DNS
		"user=root", // it reads its hosts file from the 0700 work dir
		"interface=s0",
		"bind-interfaces",
		"dhcp-range=10.64.0.0,static,255.255.0.0,1h",
		// dnsmasq's default of 1,000 leases NAKed 4,000 of N=5000.
		fmt.Sprintf("dhcp-lease-max=%d", max(1000, len(ms))),
		"dhcp-hostsfile=" + filepath.Join(dir, "hosts"),
		"dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"dhcp-authoritative",
		"no-ping",
		"dhcp-option=3," + relayAddr,
		"dhcp-userclass=set:ipxe,iPXE",
		"dhcp-option=tag:ipxe,encap:175,176,1b",
		"dhcp-boot=tag:ipxe," + bootBase + "/boot.ipxe",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "dnsmasq.conf"), []byte(dconf), 0o644); err != nil {
		return nil, err
	}
	www := filepath.Join(r.work, "www")
	nconf := fmt.Sprintf(`daemon off;
master_process on;
user root;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 8192; }
http {
	access_log %[1]s/nginx-access.log;
	client_body_temp_path %[1]s/nginx-tmp/body;
	proxy_temp_path %[1]s/nginx-tmp/proxy;
	fastcgi_temp_path %[1]s/nginx-tmp/fastcgi;
	uwsgi_temp_path %[1]s/nginx-tmp/uwsgi;
	scgi_temp_path %[1]s/nginx-tmp/scgi;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 65;
	types { }
	default_type application/octet-stream;
	server {
		listen %[2]s:8080 backlog=4096;
		root %[3]s;
		location = /boot.ipxe { default_type text/plain; }
		location = /ipxe { default_type text/plain; try_files /ipxe/$arg_mac.ipxe =404; }
		location /images/sha256/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
		location = /ignition { default_type application/json; try_files /ignition.json =404; }
		location = /booted { return 204; }
		location = /healthz { return 200 "ok\n"; }
	}
}
`, dir, serverAddr, www)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(nconf), 0o644); err != nil {
		return nil, err
	}
	b := &baseline{}
	var err error
	if b.dnsmasq, err = startIn(r.topo.Server, name+"-dnsmasq", r.work, nil, "dnsmasq", "--keep-in-foreground",
		"--conf-file="+filepath.Join(dir, "dnsmasq.conf"), "--log-facility=-", "--pid-file="); err != nil {
		return nil, err
	}
	if b.nginx, err = startIn(r.topo.Server, name+"-nginx", r.work, nil, "nginx", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir); err != nil {
		b.Stop()
		return nil, err
	}
	client := nsClient(r.topo.Machines)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(bootBase + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(b.dnsmasq.tail(4000), "DHCP, static leases only") {
				return b, nil
			}
		}
		for _, p := range []*proc{b.dnsmasq, b.nginx} {
			if ok, perr := p.exited(); ok {
				b.Stop()
				return nil, fmt.Errorf("%s exited: %v\n%s", p.Name, perr, p.tail(2000))
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b.Stop()
			return nil, fmt.Errorf("baseline not ready after 20s (last: %v)\n%s\n%s", err, b.dnsmasq.tail(1000), b.nginx.tail(1000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpu is the CPU seconds of dnsmasq, nginx's master and its workers.
func (b *baseline) cpu() (float64, error) {
	d, err1 := cpuSeconds(b.dnsmasq.Pid())
	n, err2 := cpuSeconds(b.nginx.Pid())
	if err1 != nil {
		return 0, err1
	}
	return d + n, err2
}

// Stop stops both.
func (b *baseline) Stop() {
	b.nginx.Stop(5 * time.Second)
	b.dnsmasq.Stop(5 * time.Second)
}
