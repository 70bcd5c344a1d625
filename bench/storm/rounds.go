package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runEnv is one benchmark run: its namespaces, work dir, artifacts.
type runEnv struct {
	options
	bin       string // absolute
	work      string
	topo      *topo
	artifacts string // the artifact root
	arts      []artifact
	repo      string // the site repo of the storm being run
	token     string // operator API token
	config    []byte // a worker's rendered config, for the baseline
	log       io.Writer
}

// setup makes the work dir, the namespaces and the artifacts.
func setup(ctx context.Context, o options, log io.Writer) (*runEnv, error) {
	r := &runEnv{options: o, log: log}
	var err error
	if r.bin, err = filepath.Abs(o.Bin); err != nil {
		return nil, err
	}
	if _, err := os.Stat(r.bin); err != nil {
		return nil, fmt.Errorf("undercloud binary: %w (make build)", err)
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	r.token = hex.EncodeToString(tok)
	if r.work, err = os.MkdirTemp("", "ucstorm."); err != nil {
		return nil, err
	}
	if r.topo, err = newTopo(ctx); err != nil {
		r.Close()
		return nil, err
	}
	r.artifacts = filepath.Join(r.work, "artifacts")
	if r.arts, err = writeArtifacts(r.artifacts, o.KernelMiB, o.InitrdMiB, o.RootfsMiB); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close removes the namespaces and, unless kept, the work dir.
func (r *runEnv) Close() {
	if r.topo != nil {
		r.topo.Close()
	}
	if r.Keep {
		fmt.Fprintf(r.log, "bench-storm: work dir kept: %s\n", r.work)
	} else if r.work != "" {
		_ = os.RemoveAll(r.work)
	}
}

// prepare writes the site repo for n machines (and mirrors), and the
// baseline's document root.
func (r *runEnv) prepare(ctx context.Context, ms []machineSpec, racks map[string]string, mirrors []mirrorSpec) error {
	r.repo = filepath.Join(r.work, fmt.Sprintf("repo-%d-%d", len(ms), len(mirrors)))
	// Each round of the mirror case prepares again: the same machines and
	// mirrors give the same repo, already committed.
	if _, err := os.Stat(filepath.Join(r.repo, ".git")); err != nil {
		if err := writeSiteRepo(ctx, r.repo, siteSpec{Machines: ms, Racks: racks, Artifacts: r.arts, Mirrors: mirrors}); err != nil {
			return err
		}
	}
	if r.config == nil {
		// A worker's config as undercloud renders it, from a small repo
		// of the same shape (render runs the whole gate).
		small, sracks := machines(10)
		dir := filepath.Join(r.work, "repo-render")
		if err := writeSiteRepo(ctx, dir, siteSpec{Machines: small, Racks: sracks, Artifacts: r.arts}); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, r.bin, "render", "--repo", dir, "--artifact-root", r.artifacts,
			"--site", siteName, "--machine", small[9].Name).Output()
		if err != nil {
			return fmt.Errorf("undercloud render: %w", err)
		}
		r.config = out
	}
	return writeBaselineTree(filepath.Join(r.work, "www"), r.artifacts, ms, r.arts, r.config)
}

// benchmark runs the rounds for n machines: undercloud, then the baseline,
// Rounds times.
func (r *runEnv) benchmark(ctx context.Context, n int) ([]roundResult, error) {
	ms, racks := machines(n)
	if err := r.prepare(ctx, ms, racks, nil); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.log, "bench-storm: N=%d, %d rounds, ramp %v, at most %d machines in HTTP at once, kernel %d MiB + initrd %d MiB",
		n, r.Rounds, r.Ramp, r.Conns, r.KernelMiB, r.InitrdMiB)
	if r.RootfsMiB > 0 {
		fmt.Fprintf(r.log, " + rootfs %d MiB", r.RootfsMiB)
	}
	fmt.Fprintln(r.log)
	var out []roundResult
	for round := 1; round <= r.Rounds; round++ {
		u, err := r.undercloudRound(ctx, ms, fmt.Sprintf("uc-%d-%d", n, round), false)
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(r.log, roundLine(round, u))
		b, err := r.baselineRound(ctx, ms, fmt.Sprintf("base-%d-%d", n, round))
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(r.log, roundLine(round, b))
		out = append(out, u, b)
	}
	return out, nil
}

// undercloudRound runs one storm against a fresh undercloud and checks its
// inventory afterwards.
func (r *runEnv) undercloudRound(ctx context.Context, ms []machineSpec, name string, mirrored bool) (roundResult, error) {
	dataDir := filepath.Join(r.work, name)
	defer func() {
		if !r.Keep {
			_ = os.RemoveAll(dataDir)
		}
	}()
	s, err := startUndercloud(ctx, r, dataDir, name)
	if err != nil {
		return roundResult{}, err
	}
	defer s.Stop(10 * time.Second)
	cpu0, err := cpuSeconds(s.Pid())
	if err != nil {
		return roundResult{}, err
	}
	var prof *profiler
	if r.CPUProfile != "" {
		prof = startProfiler(ctx, s, r.CPUProfile, name)
	}
	g, err := r.generate(ctx, ms)
	if err != nil {
		return roundResult{}, err
	}
	cpu1, err := cpuSeconds(s.Pid())
	if prof != nil {
		// After the CPU reading: the last chunk's profiling is no storm.
		files, perr := prof.stop()
		if perr != nil {
			fmt.Fprintf(r.log, "bench-storm: %s: %v\n", name, perr)
		}
		if len(files) > 0 {
			fmt.Fprintf(r.log, "bench-storm: %s: CPU profiles: go tool pprof -top %s %s\n", name, r.bin, filepath.Join(r.CPUProfile, name+"-*.pb.gz"))
		}
	}
	if err != nil {
		return roundResult{}, fmt.Errorf("undercloud died during the storm: %w\n%s", err, s.tail(3000))
	}
	res := summarize("undercloud", g, cpu1-cpu0)
	c, err := s.checkInventory(ctx, len(ms), mirrored)
	if err != nil {
		return res, fmt.Errorf("inventory check: %w", err)
	}
	res.Check = &c
	return res, nil
}

// baselineRound runs one storm against dnsmasq and nginx.
func (r *runEnv) baselineRound(ctx context.Context, ms []machineSpec, name string) (roundResult, error) {
	b, err := startBaseline(ctx, r, ms, name)
	if err != nil {
		return roundResult{}, err
	}
	defer b.Stop()
	cpu0, err := b.cpu()
	if err != nil {
		return roundResult{}, err
	}
	g, err := r.generate(ctx, ms)
	if err != nil {
		return roundResult{}, err
	}
	cpu1, err := b.cpu()
	if err != nil {
		return roundResult{}, err
	}
	return summarize("baseline", g, cpu1-cpu0), nil
}

// rcvbufErrors is UdpRcvbufErrors of namespace ns: datagrams its kernel
// dropped because a socket's receive buffer was full.
func rcvbufErrors(ctx context.Context, ns string) int {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0
	}
	var head []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if h == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.Atoi(f[i])
				return v
			}
		}
	}
	return 0
}

// generate runs the load generator in the machines' namespace, and counts
// the DHCP datagrams dropped on either side meanwhile.
func (r *runEnv) generate(ctx context.Context, ms []machineSpec) (genResult, error) {
	g0, s0 := rcvbufErrors(ctx, r.topo.Machines), rcvbufErrors(ctx, r.topo.Server)
	g, err := r.runGen(ctx, ms)
	g.DropsGen, g.DropsServer = rcvbufErrors(ctx, r.topo.Machines)-g0, rcvbufErrors(ctx, r.topo.Server)-s0
	return g, err
}

func (r *runEnv) runGen(ctx context.Context, ms []machineSpec) (genResult, error) {
	cfg := genConfig{DHCPServer: serverAddr + ":67", Relay: relayAddr, Ramp: r.Ramp, Conns: r.Conns, Machines: ms}
	in, _ := json.Marshal(cfg)
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", r.topo.Machines}, r.Gen...)...)
	cmd.Env = append(os.Environ(), r.GenEnv...)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return genResult{}, fmt.Errorf("load generator: %w\n%s", err, errb.String())
	}
	var g genResult
	if err := json.Unmarshal(out.Bytes(), &g); err != nil {
		return genResult{}, fmt.Errorf("load generator output: %w", err)
	}
	return g, nil
}

// genMain is `storm gen`: read a genConfig, storm, write the genResult.
func genMain(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	var cfg genConfig
	if err := json.NewDecoder(stdin).Decode(&cfg); err != nil {
		return fmt.Errorf("gen: config: %w", err)
	}
	g, err := storm(ctx, cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(g)
}

// linkBound measures the provisioning link with iperf3 (server to
// machines, 4 streams, 3 s) and returns how long moving bytes takes at
// that rate.
func (r *runEnv) linkBound(ctx context.Context, bytes int64) (time.Duration, float64, error) {
	srv, err := startIn(r.topo.Server, "iperf3", r.work, nil, "iperf3", "-s", "-1", "-B", serverAddr, "-p", "5201")
	if err != nil {
		return 0, 0, err
	}
	defer srv.Stop(2 * time.Second)
	var out []byte
	for try := 0; ; try++ {
		time.Sleep(300 * time.Millisecond)
		out, err = exec.CommandContext(ctx, "ip", "netns", "exec", r.topo.Machines,
			"iperf3", "-c", serverAddr, "-p", "5201", "-R", "-t", "3", "-P", "4", "-J").Output()
		if err == nil || try == 5 {
			break
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("iperf3: %w: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.End.SumReceived.BitsPerSecond == 0 {
		return 0, 0, fmt.Errorf("iperf3 output: %v", err)
	}
	bps := res.End.SumReceived.BitsPerSecond
	return time.Duration(float64(bytes) * 8 / bps * float64(time.Second)), bps / 1e9, nil
}
