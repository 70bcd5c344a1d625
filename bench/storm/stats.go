package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// roundResult is one storm against one server.
type roundResult struct {
	Server    string // undercloud or baseline
	N         int
	Total     time.Duration // first power-on to the last machine's end
	CPU       float64       // server CPU seconds during the storm
	Failed    int
	FirstErrs []string
	Phases    map[string][]time.Duration // per phase, one value per machine that reached it
	Bytes     int64
	Check     *inventoryCheck // undercloud only
	From      map[string]int  // where the machines found their booted URL
	Resent    int             // DHCP retransmissions, all machines
	// UDP datagrams dropped for a full socket buffer: at the generator
	// (the relay's socket), at the server.
	DropsGen, DropsServer int
}

// summarize turns the generator's output into a round result.
func summarize(server string, g genResult, cpu float64) roundResult {
	r := roundResult{Server: server, N: len(g.Machines), Total: g.End.Sub(g.Start), CPU: cpu,
		Phases: map[string][]time.Duration{}, From: map[string]int{}, DropsGen: g.DropsGen, DropsServer: g.DropsServer}
	for _, m := range g.Machines {
		r.Bytes += m.Bytes
		r.Resent += max(0, m.DHCPSends-2)
		if m.BootedFrom != "" {
			r.From[m.BootedFrom]++
		}
		if m.Err != "" {
			r.Failed++
			if len(r.FirstErrs) < 5 {
				r.FirstErrs = append(r.FirstErrs, m.Name+": "+m.Err)
			}
			continue
		}
		for p, d := range m.Phases {
			r.Phases[p] = append(r.Phases[p], d)
		}
	}
	for _, ds := range r.Phases {
		slices.Sort(ds)
	}
	return r
}

// pct is the p-th percentile (nearest rank) of sorted ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*p/100+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is "min-max" of xs in the unit's format.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf(format+"–"+format, slices.Min(xs), slices.Max(xs))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "  -  "
	}
	return fmt.Sprintf("%5.2f", a/b)
}

// report prints the rounds of one N: per phase the median over rounds of
// each round's p50 and p99, the total time and the CPU, with spreads and
// ratios a/b (undercloud/baseline).
func report(w io.Writer, n int, rounds []roundResult, a, b string, linkBound time.Duration, linkGbps float64) {
	by := map[string][]roundResult{}
	for _, r := range rounds {
		by[r.Server] = append(by[r.Server], r)
	}
	uc, bl := by[a], by[b]
	fmt.Fprintf(w, "\nbench-storm N=%d: %d rounds each, medians of the rounds' figures (spread min–max)\n", n, len(uc))
	if linkGbps > 0 {
		fmt.Fprintf(w, "  link bound: %.1f GB to move at %.2f Gbit/s (iperf3, same veth) = %.2fs\n",
			float64(bytesOf(rounds))/1e9, linkGbps, linkBound.Seconds())
	}
	fmt.Fprintf(w, "  %-9s %-44s %-44s %s\n", "phase", a+" p50 / p99 (ms)", b+" p50 / p99 (ms)", "ratio p50 / p99")
	for _, p := range phases {
		u50, u99 := phaseFigures(uc, p)
		b50, b99 := phaseFigures(bl, p)
		if len(u50) == 0 && len(b50) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-9s %-44s %-44s %s / %s\n", p,
			fmt.Sprintf("%7.1f / %7.1f (%s / %s)", median(u50), median(u99), spread(u50, "%.0f"), spread(u99, "%.0f")),
			fmt.Sprintf("%7.1f / %7.1f (%s / %s)", median(b50), median(b99), spread(b50, "%.0f"), spread(b99, "%.0f")),
			ratio(median(u50), median(b50)), ratio(median(u99), median(b99)))
	}
	ut, bt := totals(uc), totals(bl)
	fmt.Fprintf(w, "  %-9s %-44s %-44s %s\n", "total s", fmt.Sprintf("%7.2f (%s)", median(ut), spread(ut, "%.2f")),
		fmt.Sprintf("%7.2f (%s)", median(bt), spread(bt, "%.2f")), ratio(median(ut), median(bt)))
	if linkBound > 0 {
		fmt.Fprintf(w, "  %-9s %-44s %-44s\n", "/ link", fmt.Sprintf("%7.2f", median(ut)/linkBound.Seconds()), fmt.Sprintf("%7.2f", median(bt)/linkBound.Seconds()))
	}
	uc2, bc := cpus(uc), cpus(bl)
	fmt.Fprintf(w, "  %-9s %-44s %-44s %s\n", "cpu s", fmt.Sprintf("%7.2f (%s)", median(uc2), spread(uc2, "%.2f")),
		fmt.Sprintf("%7.2f (%s)", median(bc), spread(bc, "%.2f")), ratio(median(uc2), median(bc)))
	for _, r := range rounds {
		if r.Failed > 0 {
			fmt.Fprintf(w, "  %s: %d of %d machines failed, e.g. %s\n", r.Server, r.Failed, r.N, strings.Join(r.FirstErrs, " | "))
		}
	}
}

func phaseFigures(rs []roundResult, p string) (p50, p99 []float64) {
	for _, r := range rs {
		if ds := r.Phases[p]; len(ds) > 0 {
			p50 = append(p50, float64(pct(ds, 50))/1e6)
			p99 = append(p99, float64(pct(ds, 99))/1e6)
		}
	}
	return p50, p99
}

func totals(rs []roundResult) []float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, r.Total.Seconds())
	}
	return xs
}

func cpus(rs []roundResult) []float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, r.CPU)
	}
	return xs
}

func bytesOf(rs []roundResult) int64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[0].Bytes
}

// roundLine is one round in one line, printed as it ends.
func roundLine(round int, r roundResult) string {
	s := fmt.Sprintf("  round %d %-10s N=%d total %6.2fs cpu %6.2fs, %.1f GB, %d failed, %d DHCP retransmissions (UDP overflows: generator %d, server %d); booted URL from %v",
		round, r.Server, r.N, r.Total.Seconds(), r.CPU, float64(r.Bytes)/1e9, r.Failed, r.Resent, r.DropsGen, r.DropsServer, r.From)
	if r.Check != nil {
		s += "\n    " + r.Check.String()
	}
	return s
}
