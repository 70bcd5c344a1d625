// Command storm is `make bench-storm`: a rack of N PXE machines powering on
// at once against `undercloud serve`, and against a baseline of dnsmasq and
// nginx serving the same bytes, in rounds that take turns on the same
// network namespaces.
//
// Each simulated machine does what iPXE and a booting node do: a relayed
// DHCP exchange (the generator is the relay agent, giaddr 10.64.0.1, with
// options 93, 77 "iPXE" and 97 as iPXE sends them), GET /boot.ipxe, the
// chained per-machine script, its kernel and initrd (and a rootfs named by
// the kernel arguments, checked against its digest), the Ignition config,
// and the booted report whose URL the config carries. The load generator
// runs as `storm gen` inside the machines' namespace, where every address of
// the relay subnet is local, so each machine speaks from its own address.
//
// Usage: storm -bin bin/undercloud [-n 100,1000] [-rounds 3] [-ramp 1s] [-conns 512] [-mirror] [-cpuprofile DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-storm:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "gen" {
		return genMain(ctx, stdin, stdout)
	}
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.Bin, "bin", "bin/undercloud", "the undercloud binary")
	ns := fs.String("n", "100,1000", "machines per storm, comma-separated: each N is benchmarked in turn")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds per N; each round runs undercloud, then the baseline")
	fs.DurationVar(&o.Ramp, "ramp", time.Second, "all machines power on within this time")
	fs.IntVar(&o.Conns, "conns", 512, "machines in their HTTP phases at once (one connection each; undercloud's --max-conns is 1024)")
	fs.IntVar(&o.KernelMiB, "kernel-mib", 8, "kernel size, MiB of random bytes")
	fs.IntVar(&o.InitrdMiB, "initrd-mib", 24, "initrd size, MiB")
	fs.IntVar(&o.RootfsMiB, "rootfs-mib", 0, "rootfs size, MiB (0: none); the node fetches it by a kernel argument and checks its sha256")
	fs.BoolVar(&o.Mirror, "mirror", false, "run the mirror case instead: server link at 1 Gbit/s, two nginx caches as site mirrors by rack")
	fs.IntVar(&o.MirrorN, "mirror-n", 500, "machines in the mirror case")
	fs.StringVar(&o.LinkRate, "link-rate", "1gbit", "tc rate of the server's and each mirror's link in the mirror case")
	fs.BoolVar(&o.FillFirst, "fill-first", true, "mirror case: the caches' fills go first on the server's link (a prio qdisc), not in a fair share with every machine's download")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory (logs, repo, inventories)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write CPU profiles of undercloud during each of its storms into this directory (taken through its /debug/pprof, back to back, "+fmt.Sprint(profileChunk)+" s each; go tool pprof merges them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 40000 {
			return fmt.Errorf("-n: %q is not a machine count from 1 to 40000", s)
		}
		o.Ns = append(o.Ns, n)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.Gen = []string{self, "gen"}
	r, err := setup(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer r.Close()
	if o.Mirror {
		return r.mirrorCase(ctx, stdout)
	}
	// Failed boots and failed inventory checks are reported with the
	// figures, and make the run fail at the end.
	var failures []error
	for _, n := range o.Ns {
		rounds, err := r.benchmark(ctx, n)
		if err != nil {
			return err
		}
		bound, gbps, err := r.linkBound(ctx, bytesOf(rounds))
		if err != nil {
			fmt.Fprintf(stderr, "bench-storm: no link bound: %v\n", err)
		}
		report(stdout, n, rounds, "undercloud", "baseline", bound, gbps)
		for _, rr := range rounds {
			if rr.Failed > 0 {
				failures = append(failures, fmt.Errorf("N=%d %s: %d machines failed to boot", n, rr.Server, rr.Failed))
			}
			if rr.Check != nil && len(rr.Check.Problems) > 0 {
				failures = append(failures, fmt.Errorf("N=%d %s: inventory check: %s", n, rr.Server, strings.Join(rr.Check.Problems, "; ")))
			}
		}
	}
	return errors.Join(failures...)
}

// options are the benchmark's flags.
type options struct {
	Bin                             string
	Ns                              []int
	Rounds                          int
	Ramp                            time.Duration
	Conns                           int
	KernelMiB, InitrdMiB, RootfsMiB int
	Mirror                          bool
	MirrorN                         int
	LinkRate                        string
	FillFirst                       bool
	Keep                            bool
	CPUProfile                      string   // a directory, or empty
	Gen                             []string // the command that runs the load generator; it reads genConfig on stdin
	GenEnv                          []string
}
