package inventory

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// BenchmarkLeaseCommit measures what the DHCP server needs per exchange: an
// offer and a committed bind of a distinct MAC, from many goroutines at
// once as concurrent packets would (16 per CPU).
func BenchmarkLeaseCommit(b *testing.B) {
	db := openTest(b, nil)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			req := LeaseRequest{MAC: testMAC(i), IP: testIP(i), Site: "lab"}
			if _, err := db.Offer(ctx, req); err != nil {
				b.Error(err)
				return
			}
			if _, err := db.Bind(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
}

// BenchmarkExchange is a whole DORA exchange of an unknown machine as the
// DHCP server will run it: the address allocated from a dynamic range, the
// bind committed, and the four packets recorded as boot events.
func BenchmarkExchange(b *testing.B) {
	db := openTest(b, nil)
	ctx := context.Background()
	r := sites.Range{Start: numAddr(10 << 24), End: numAddr(10<<24 + 1<<20)}
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mac := testMAC(int(next.Add(1)))
			rec := func(k event.Kind) bool {
				if err := db.Record(ctx, Event{MAC: mac, Site: "lab", Kind: k, Source: "0.0.0.0:68"}); err != nil {
					b.Error(err)
					return false
				}
				return true
			}
			if !rec(event.DHCPDiscover) {
				return
			}
			l, err := db.Allocate(ctx, LeaseRequest{MAC: mac, Site: "lab"}, r)
			if err != nil {
				b.Error(err)
				return
			}
			if !rec(event.DHCPOffer) || !rec(event.DHCPRequest) {
				return
			}
			if _, err := db.Bind(ctx, LeaseRequest{MAC: mac, IP: l.IP, Site: "lab"}); err != nil {
				b.Error(err)
				return
			}
			if !rec(event.DHCPAck) {
				return
			}
		}
	})
	if err := db.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
}

// BenchmarkAllocate allocates (offers) from a range that already holds
// 30000 leases, one client at a time: the cost must not grow with them.
func BenchmarkAllocate(b *testing.B) {
	db := openTest(b, nil)
	ctx := context.Background()
	const used = 30000
	fillLeases(b, db, 10<<24, used)
	r := sites.Range{Start: numAddr(10 << 24), End: numAddr(10<<24 + 1<<20)}
	if _, err := db.Allocate(ctx, LeaseRequest{MAC: testMAC(used)}, r); err != nil { // walks the used run once
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := db.Allocate(ctx, LeaseRequest{MAC: testMAC(used + 1 + i)}, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecord measures queued boot events, stored in group commits.
func BenchmarkRecord(b *testing.B) {
	db := openTest(b, nil)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			if err := db.Record(ctx, Event{MAC: testMAC(i % 5000), Site: "lab", Kind: event.DHCPDiscover}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := db.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
