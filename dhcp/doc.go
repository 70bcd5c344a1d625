// Package dhcp is undercloud's DHCPv4 server: it gives machines their
// address and the first step of their network boot.
//
// The server is authoritative on a segment (known machines get their reserved
// address, unknown ones an address from the subnet's dynamic range and are
// reported as discovered) or, when a subnet is in proxy mode, a proxyDHCP
// server next to another DHCP server: it then answers PXE clients only, with
// boot information and no address, on port 67 and on port 4011.
//
// Decisions are pure functions (Classify, the reply builder, the reply
// destination) around which the socket loop is thin. The package imports no
// other undercloud package: it declares the small interfaces it needs (Plan,
// Leases, Recorder, Metrics) and the composition root adapts the site configs
// and the inventory to them.
//
// Packet encoding is github.com/insomniacslk/dhcp/dhcpv4. Its server4 loop is
// not used: it sets SO_REUSEPORT (so two servers can silently share port 67),
// spawns a goroutine per packet and does not reply to relays. Serve reads a
// socket opened by Listen without SO_REUSEPORT: it answers on the reading
// goroutine what needs no store write (known machines, and leases the store
// answers from memory, LeaseCache), and hands the rest to a fixed pool of
// workers, which wait for lease commits in parallel.
package dhcp
