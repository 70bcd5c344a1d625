package testvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/undercloud/undercloud/ignition"
)

// BaselineConfig configures a [Baseline] server.
type BaselineConfig struct {
	// Image is the test image to serve; required.
	Image Image
	// Ignition is the config served at /ignition?mac=M; required. When it
	// writes ignition.ReportEnvPath (`undercloud render` output does, with
	// placeholders), that file is replaced per machine by one naming this
	// server's /booted and /heartbeat with the machine's MAC, as a static
	// server holding one pre-rendered file per machine would serve it.
	Ignition []byte
	// Version names the config in its booted URLs; default "baseline".
	Version string
	// Port is the HTTP port on the lab's ServerAddr; default 8080.
	Port int
	// KernelArgs go before the root and config URLs; default
	// "console=ttyS0 systemd.show_status=1 systemd.status_unit_format=name quiet"
	// (status lines name units, so they are never cut to the console width).
	KernelArgs string
	// Hosts are the first and last host numbers of the DHCP range in the lab
	// subnet; default 100 and 199.
	Hosts [2]int
}

// BootedPost is one POST /booted the baseline server received.
type BootedPost struct {
	// Time is when it arrived.
	Time time.Time
	// MAC and Version are the query parameters the machine sent back.
	MAC, Version string
	// Agent is the request's User-Agent.
	Agent string
	// Body is the decoded JSON body.
	Body BootedBody
	// Raw is the body as received.
	Raw []byte
}

// Baseline is the comparison server of `make bench-boot`: dnsmasq for DHCP
// and TFTP (no ping probe, 175.176=1 for iPXE) and a Go HTTP server inside the
// lab serving boot.ipxe, the test image (kernel, initramfs, root), a static
// Ignition config per machine and accepting the booted POST of the config's
// unit. It is what the real server must match.
type Baseline struct {
	// URL is the HTTP server's base, e.g. http://10.99.0.1:8080.
	URL string
	// DNSMasq is the dnsmasq process (its log: DNSMasq.Log).
	DNSMasq *Proc

	cfg    BaselineConfig
	lab    *Lab
	srv    *http.Server
	mu     sync.Mutex
	posts  []BootedPost
	notify chan struct{} // closed and replaced on every POST
}

// bootScript chains straight to the kernel: the MAC goes into the config
// URL so the server can tell machines apart without a database.
var bootScript = template.Must(template.New("boot.ipxe").Option("missingkey=error").Parse(`#!ipxe
echo undercloud baseline: ${net0/mac} ${net0/ip} ${platform}
kernel {{.URL}}/vmlinuz initrd=initrd.img {{.Args}} coreos.live.rootfs_url={{.URL}}/images/sha256/{{.Rootfs}} ignition.config.url={{.URL}}/ignition?mac=${net0/mac}
initrd --name initrd.img {{.URL}}/initrd.img
boot
`))

// StartBaseline starts dnsmasq and the HTTP server inside the lab. The lab
// stops both on Close.
func StartBaseline(ctx context.Context, lab *Lab, cfg BaselineConfig) (*Baseline, error) {
	if cfg.Image.Kernel == "" || len(cfg.Ignition) == 0 {
		return nil, errors.New("testvm: BaselineConfig needs Image and Ignition")
	}
	if cfg.Version == "" {
		cfg.Version = "baseline"
	}
	if cfg.Port == 0 {
		cfg.Port = 8080
	}
	if cfg.KernelArgs == "" {
		cfg.KernelArgs = "console=ttyS0 systemd.show_status=1 systemd.status_unit_format=name quiet"
	}
	if cfg.Hosts == [2]int{} {
		cfg.Hosts = [2]int{100, 199}
	}
	b := &Baseline{
		URL: fmt.Sprintf("http://%s", netip.AddrPortFrom(lab.ServerAddr, uint16(cfg.Port))),
		cfg: cfg, lab: lab, notify: make(chan struct{}),
	}
	ln, err := lab.Listen("tcp", netip.AddrPortFrom(lab.ServerAddr, uint16(cfg.Port)).String())
	if err != nil {
		return nil, err
	}
	b.srv = &http.Server{Handler: b.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	lab.onClose(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := b.srv.Shutdown(ctx); err != nil {
			// A VM switched off mid-download never closes its connection.
			return b.srv.Close()
		}
		return nil
	})
	if b.DNSMasq, err = b.startDNSMasq(); err != nil {
		return nil, err
	}
	if err := b.waitDHCP(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// startDNSMasq writes dnsmasq's config and TFTP root and starts it.
func (b *Baseline) startDNSMasq() (*Proc, error) {
	dir := filepath.Join(b.lab.Dir, "baseline")
	tftp := filepath.Join(dir, "tftp")
	if err := os.MkdirAll(tftp, 0o755); err != nil {
		return nil, fmt.Errorf("baseline dir: %w", err)
	}
	for _, f := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"} {
		if err := copyFile(filepath.Join(ipxeDir, f), filepath.Join(tftp, f)); err != nil {
			return nil, fmt.Errorf("%w (apt-get install ipxe)", err)
		}
	}
	mask := net.CIDRMask(b.lab.Subnet.Bits(), 32)
	conf := strings.Join([]string{
		"port=0", // no DNS
		"interface=" + b.lab.Bridge,
		"bind-interfaces",
		fmt.Sprintf("dhcp-range=%s,%s,%s,1h", b.lab.Addr(b.cfg.Hosts[0]), b.lab.Addr(b.cfg.Hosts[1]), net.IP(mask)),
		"dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"dhcp-authoritative",
		"no-ping", // a ping probe per new address serialises concurrent boots
		"log-dhcp",
		"dhcp-match=set:ipxe,175",
		"dhcp-option=tag:ipxe,encap:175,176,1b", // iPXE: skip the ~3 s proxyDHCP wait
		"dhcp-vendorclass=set:efi64,PXEClient:Arch:00007",
		"dhcp-vendorclass=set:efi64,PXEClient:Arch:00009",
		"dhcp-boot=tag:ipxe," + b.URL + "/boot.ipxe",
		"dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi",
		"dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe",
		"enable-tftp",
		"tftp-root=" + tftp,
	}, "\n") + "\n"
	confPath := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("dnsmasq config: %w", err)
	}
	return b.lab.Start("dnsmasq", "dnsmasq", "--keep-in-foreground", "--conf-file="+confPath,
		"--log-facility=-", "--pid-file=")
}

// waitDHCP waits until dnsmasq has bound its DHCP socket, or died trying.
func (b *Baseline) waitDHCP(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if strings.Contains(tailFile(b.DNSMasq.Log, 4000), "DHCP, IP range") {
			return nil
		}
		select {
		case <-b.DNSMasq.Done():
			return b.DNSMasq.exitError()
		case <-ctx.Done():
			return fmt.Errorf("dnsmasq not ready: %w\n%s", ctx.Err(), tailFile(b.DNSMasq.Log, 2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *Baseline) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_ = bootScript.Execute(w, map[string]string{"URL": b.URL, "Args": b.cfg.KernelArgs, "Rootfs": b.cfg.Image.RootfsSHA256})
	})
	mux.HandleFunc("GET /vmlinuz", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, b.cfg.Image.Kernel)
	})
	mux.HandleFunc("GET /initrd.img", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, b.cfg.Image.Initrd)
	})
	mux.HandleFunc("GET /images/sha256/"+b.cfg.Image.RootfsSHA256, func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, b.cfg.Image.Rootfs)
	})
	mux.HandleFunc("GET /ignition", func(w http.ResponseWriter, r *http.Request) {
		mac, err := net.ParseMAC(r.URL.Query().Get("mac"))
		if err != nil {
			http.Error(w, "mac", http.StatusBadRequest)
			return
		}
		q := "?mac=" + mac.String() + "&version=" + b.cfg.Version
		cfg, err := withReportEnv(b.cfg.Ignition, ignition.PerBoot{
			BootID: "baseline", BootedURL: b.URL + "/booted" + q, HeartbeatURL: b.URL + "/heartbeat" + q})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(cfg)
	})
	mux.HandleFunc("POST /booted", b.booted)
	mux.HandleFunc("POST /heartbeat", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// withReportEnv returns cfg with the storage file ignition.ReportEnvPath,
// if it has one, replaced by pb's values.
func withReportEnv(cfg []byte, pb ignition.PerBoot) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &top); err != nil {
		return nil, fmt.Errorf("baseline config: %w", err)
	}
	var storage map[string]json.RawMessage
	var files []map[string]any
	if raw, ok := top["storage"]; ok {
		if err := json.Unmarshal(raw, &storage); err != nil {
			return nil, fmt.Errorf("baseline config storage: %w", err)
		}
		if raw, ok := storage["files"]; ok {
			if err := json.Unmarshal(raw, &files); err != nil {
				return nil, fmt.Errorf("baseline config storage.files: %w", err)
			}
		}
	}
	kept := files[:0]
	for _, f := range files {
		if f["path"] != ignition.ReportEnvPath {
			kept = append(kept, f)
		}
	}
	if len(kept) == len(files) {
		return cfg, nil
	}
	storage["files"], _ = json.Marshal(kept)
	top["storage"], _ = json.Marshal(storage)
	stripped, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	return ignition.WithReport(stripped, pb)
}

// booted records the node's callback.
func (b *Baseline) booted(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	p := BootedPost{Time: time.Now(), MAC: r.URL.Query().Get("mac"), Version: r.URL.Query().Get("version"),
		Agent: r.UserAgent(), Raw: raw}
	if err := json.Unmarshal(raw, &p.Body); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.posts = append(b.posts, p)
	close(b.notify)
	b.notify = make(chan struct{})
	b.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Posts returns every booted POST so far.
func (b *Baseline) Posts() []BootedPost {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]BootedPost(nil), b.posts...)
}

// WaitPost waits until the n-th (1-based) booted POST from mac has arrived
// and returns it.
func (b *Baseline) WaitPost(ctx context.Context, mac net.HardwareAddr, n int) (BootedPost, error) {
	for {
		b.mu.Lock()
		seen := 0
		for _, p := range b.posts {
			if strings.EqualFold(p.MAC, mac.String()) {
				if seen++; seen == n {
					b.mu.Unlock()
					return p, nil
				}
			}
		}
		notify := b.notify
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return BootedPost{}, fmt.Errorf("booted POST #%d from %s: %w", n, mac, ctx.Err())
		case <-notify:
		}
	}
}
