package dhcp

import (
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// TestProxyMode plays a UEFI PXE client on a segment where another server
// gave it 10.99.0.50: our proxy offer on port 67 carries the boot file and
// no address, the REQUEST on port 4011 is acknowledged to the client, and
// a plain DHCP client hears nothing from us.
func TestProxyMode(t *testing.T) {
	plan := testPlan()
	plan.subnets[0].Proxy, plan.subnets[0].Range = true, nil
	metrics := &memMetrics{}
	rec := &memRecorder{}
	s := &Server{Iface: srvIf, ServerIP: serverIP, BootURL: "http://10.99.0.1:8080", Plan: plan, Recorder: rec, Metrics: metrics}
	l := newLab(t)
	l.serve(t, s, ServerPort, ProxyPort)
	l.ip(t, l.cli, "addr", "add", "10.99.0.50/24", "dev", cliIf)
	client := udpIn(t, l.cli, cliIf, "0.0.0.0:68")

	type summary struct {
		From, Type, YIAddr, SIAddr, File string
		Vendor, Server                   string
		PXE                              []byte
	}
	sum := func(p *dhcpv4.DHCPv4, from string) summary {
		return summary{from, p.MessageType().String(), p.YourIPAddr.String(), p.ServerIPAddr.String(), p.BootFileName,
			p.ClassIdentifier(), p.ServerIdentifier().String(), p.GetOneOption(dhcpv4.OptionVendorSpecificInformation)}
	}
	pxe := []dhcpv4.Modifier{arch(iana.EFI_X86_64), vendor("PXEClient:Arch:00007:UNDI:003016")}

	offer, from := roundTrip(t, client, "255.255.255.255:67", discover(t, unknownMAC, pxe...), time.Second)
	if offer == nil {
		t.Fatal("no proxy offer")
	}
	want := summary{"10.99.0.1:67", "OFFER", "0.0.0.0", "10.99.0.1", "ipxe.efi", "PXEClient", "10.99.0.1", []byte{6, 1, 8, 255}}
	if diff := cmp.Diff(want, sum(offer, from.String())); diff != "" {
		t.Errorf("proxy offer (-want +got):\n%s", diff)
	}

	req := packet(t, dhcpv4.MessageTypeRequest, unknownMAC, append(pxe, ciaddr("10.99.0.50"))...)
	ack, from := roundTrip(t, client, "10.99.0.1:4011", req, time.Second)
	if ack == nil {
		t.Fatal("no ack on the proxy port")
	}
	want.From, want.Type = "10.99.0.1:4011", "ACK"
	if diff := cmp.Diff(want, sum(ack, from.String())); diff != "" {
		t.Errorf("proxy ack (-want +got):\n%s", diff)
	}
	if got := net.IP(ack.ClientIPAddr).String(); got != "10.99.0.50" {
		t.Errorf("ack ciaddr = %s, want 10.99.0.50", got)
	}

	if rep, _ := roundTrip(t, client, "255.255.255.255:67", discover(t, otherMAC), 300*time.Millisecond); rep != nil {
		t.Errorf("plain client got a %s in proxy mode", rep.MessageType())
	}
	if !waitFor(2*time.Second, func() bool { return metrics.count("discover/ignored") == 3 }) {
		got := metrics.count("discover/ignored")
		t.Errorf("ignored discovers = %d, want 3 (one per try)", got)
	}
	want2 := []string{"discover - known=false", "offer - known=false", "request - known=false", "ack - known=false"}
	if diff := cmp.Diff(want2, rec.summary()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
