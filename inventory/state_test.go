package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/undercloud/undercloud/event"
	"github.com/undercloud/undercloud/sites"
)

// An unknown machine told there is nothing to boot says so, boots again as
// usual, and becomes known once a site config declares it.
func TestNothingToBoot(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openTest(t, clk)
	mac := testMAC(9)
	ip := testIP(9)
	steps := []stateStep{
		{Event{Kind: event.DHCPDiscover, Site: "lab"}, StateBooting},
		{Event{Kind: event.DHCPAck, Site: "lab", IP: ip}, StateBooting},
		{Event{Kind: event.IPXEChain, Site: "lab", IP: ip}, StateBooting},
		{Event{Kind: event.IPXEScript, Site: "lab", IP: ip, Detail: event.NothingToBoot}, StateNothingToBoot},
		{Event{Kind: event.DHCPDiscover, Site: "lab"}, StateBooting},
		{Event{Kind: event.IPXEScript, Site: "lab", IP: ip, Detail: event.NothingToBoot}, StateNothingToBoot},
	}
	recordSteps(t, db, clk, mac, steps)
	if err := db.DeclareMachines(ctx, release("c1", decl("lab-w9", 9, sites.RoleWorker))); err != nil {
		t.Fatal(err)
	}
	m, err := db.Machine(ctx, mac)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateKnown || m.Discovered {
		t.Errorf("declared: state %s, discovered %v; want %s, false", m.State, m.Discovered, StateKnown)
	}
}

// stamp returns the stored form of 10:00 plus sec seconds.
func stamp(sec float64) string {
	return time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(sec * float64(time.Second))).Format(timeFormat)
}

func TestNextState(t *testing.T) {
	// Boot b1 ran from 0 s to its booted report at 30 s; boot b2 started
	// with a DISCOVER at 40 s and had its script at 43 s.
	ended := bootMarks{endBoot: "b1", endAt: stamp(30), stepBoot: "b1", stepAt: stamp(7)}
	reboot := bootMarks{endBoot: "b1", endAt: stamp(30), stepBoot: "b2", stepAt: stamp(43)}
	booting := bootMarks{stepBoot: "b1", stepAt: stamp(7)}
	exited := bootMarks{endBoot: "b1", endAt: stamp(3), stepBoot: "", stepAt: stamp(2)}
	for name, tc := range map[string]struct {
		cur        State
		marks      bootMarks
		step       step
		discovered bool // in no site config
		want       State
		wantMarks  *bootMarks // nil: not checked
	}{
		// One event after another, in time order.
		"unknown machine discovers":          {cur: StateDiscovered, step: step{kind: event.DHCPDiscover, at: stamp(1)}, want: StateBooting},
		"known machine fetches iPXE":         {cur: StateKnown, step: step{kind: event.TFTP, at: stamp(1)}, want: StateBooting},
		"provisioned machine reboots":        {cur: StateProvisioned, marks: ended, step: step{kind: event.DHCPDiscover, at: stamp(40)}, want: StateBooting, wantMarks: &bootMarks{endBoot: "b1", endAt: stamp(30), stepAt: stamp(40)}},
		"row without marks reboots":          {cur: StateProvisioned, step: step{kind: event.DHCPDiscover, at: stamp(40)}, want: StateBooting},
		"running OS renews its lease":        {cur: StateProvisioned, marks: ended, step: step{kind: event.DHCPRequest, at: stamp(100)}, want: StateProvisioned, wantMarks: &ended},
		"renewal ack":                        {cur: StateProvisioned, marks: ended, step: step{kind: event.DHCPAck, at: stamp(100)}, want: StateProvisioned, wantMarks: &ended},
		"request during a boot":              {cur: StateBooting, marks: booting, step: step{kind: event.DHCPRequest, at: stamp(8)}, want: StateBooting, wantMarks: &booting},
		"known machine's first request":      {cur: StateKnown, step: step{kind: event.DHCPAck, at: stamp(1)}, want: StateBooting, wantMarks: &bootMarks{}},
		"boot completes":                     {cur: StateBooting, marks: booting, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateProvisioned, wantMarks: &ended},
		"booted without steps seen":          {cur: StateKnown, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateProvisioned, wantMarks: &bootMarks{endBoot: "b1", endAt: stamp(30)}},
		"config refused":                     {cur: StateProvisioned, marks: ended, step: step{kind: event.IgnitionDenied, at: stamp(50)}, want: StateProvisioned},
		"failed machine retries":             {cur: StateFailed, marks: ended, step: step{kind: event.DHCPDiscover, at: stamp(40)}, want: StateBooting},
		"heartbeat changes nothing":          {cur: StateProvisioned, marks: ended, step: step{kind: event.Heartbeat, boot: "b1", at: stamp(60)}, want: StateProvisioned, wantMarks: &ended},
		"heartbeat while booting":            {cur: StateBooting, marks: reboot, step: step{kind: event.Heartbeat, boot: "b1", at: stamp(60)}, want: StateBooting},
		"release changes nothing":            {cur: StateProvisioned, marks: ended, step: step{kind: event.DHCPRelease, at: stamp(60)}, want: StateProvisioned},
		"inform changes nothing":             {cur: StateKnown, step: step{kind: event.DHCPInform, at: stamp(1)}, want: StateKnown},
		"a kind added later changes nothing": {cur: StateProvisioned, marks: ended, step: step{kind: event.Kind("bmc-power-cycle"), at: stamp(60)}, want: StateProvisioned},
		"artifact of a later boot":           {cur: StateProvisioned, marks: ended, step: step{kind: event.Artifact, boot: "b2", at: stamp(44)}, want: StateBooting},
		"ignition served":                    {cur: StateBooting, marks: booting, step: step{kind: event.Ignition, boot: "b1", at: stamp(7)}, want: StateBooting},
		"unknown machine told to exit":       {cur: StateBooting, marks: bootMarks{stepAt: stamp(2)}, step: step{kind: event.IPXEScript, detail: event.NothingToBoot, boot: "b1", at: stamp(3)}, discovered: true, want: StateNothingToBoot, wantMarks: &exited},
		"exit in the first batch":            {cur: StateDiscovered, step: step{kind: event.IPXEScript, detail: event.NothingToBoot, boot: "b1", at: stamp(3)}, discovered: true, want: StateNothingToBoot},
		"declared machine told to exit":      {cur: StateBooting, step: step{kind: event.IPXEScript, detail: event.NothingToBoot, boot: "b1", at: stamp(3)}, want: StateBooting, wantMarks: &bootMarks{stepBoot: "b1", stepAt: stamp(3)}},
		"unknown machine boots discovery":    {cur: StateBooting, step: step{kind: event.IPXEScript, detail: "discovery", boot: "b1", at: stamp(3)}, discovered: true, want: StateBooting},
		"nothing to boot, boots again":       {cur: StateNothingToBoot, marks: exited, step: step{kind: event.DHCPDiscover, at: stamp(40)}, discovered: true, want: StateBooting},
		"nothing to boot, asks again":        {cur: StateNothingToBoot, marks: exited, step: step{kind: event.DHCPRequest, at: stamp(40)}, discovered: true, want: StateBooting, wantMarks: &exited},
		"nothing to boot, heartbeat":         {cur: StateNothingToBoot, marks: exited, step: step{kind: event.Heartbeat, at: stamp(40)}, discovered: true, want: StateNothingToBoot},
		"nothing to boot, denied":            {cur: StateNothingToBoot, marks: exited, step: step{kind: event.IPXEDenied, detail: event.NothingToBoot, at: stamp(40)}, discovered: true, want: StateNothingToBoot},

		// A step of the booted boot stored after its booted report.
		"its ignition stored late":            {cur: StateProvisioned, marks: ended, step: step{kind: event.Ignition, boot: "b1", at: stamp(7)}, want: StateProvisioned, wantMarks: &ended},
		"its ignition stamped after booted":   {cur: StateProvisioned, marks: ended, step: step{kind: event.Ignition, boot: "b1", at: stamp(31)}, want: StateProvisioned, wantMarks: &bootMarks{endBoot: "b1", endAt: stamp(30), stepBoot: "b1", stepAt: stamp(31)}},
		"its artifact stored late":            {cur: StateProvisioned, marks: ended, step: step{kind: event.Artifact, boot: "b1", at: stamp(5)}, want: StateProvisioned, wantMarks: &ended},
		"its discover stored late":            {cur: StateProvisioned, marks: ended, step: step{kind: event.DHCPDiscover, at: stamp(0)}, want: StateProvisioned, wantMarks: &ended},
		"its chain stored late":               {cur: StateProvisioned, marks: ended, step: step{kind: event.IPXEChain, at: stamp(2)}, want: StateProvisioned, wantMarks: &ended},
		"a step at the booted report's time":  {cur: StateProvisioned, marks: ended, step: step{kind: event.TFTP, at: stamp(30)}, want: StateProvisioned},
		"a step just after the booted report": {cur: StateProvisioned, marks: ended, step: step{kind: event.TFTP, at: stamp(30.001)}, want: StateBooting},
		"late step while a later boot runs":   {cur: StateBooting, marks: reboot, step: step{kind: event.Ignition, boot: "b1", at: stamp(7)}, want: StateBooting, wantMarks: &reboot},
		"older boot's step after failure":     {cur: StateFailed, marks: ended, step: step{kind: event.Artifact, boot: "b1", at: stamp(5)}, want: StateFailed},
		"declared after nothing to boot":      {cur: StateKnown, marks: exited, step: step{kind: event.DHCPAck, at: stamp(1)}, want: StateKnown, wantMarks: &exited},
		"nothing to boot, next step at once":  {cur: StateNothingToBoot, marks: exited, step: step{kind: event.DHCPDiscover, at: stamp(3)}, discovered: true, want: StateBooting},
		"exit's own discover stored late":     {cur: StateNothingToBoot, marks: exited, step: step{kind: event.DHCPDiscover, at: stamp(0)}, discovered: true, want: StateNothingToBoot, wantMarks: &exited},

		// A booted report stored after other events.
		"booted after its late-stamped ignition": {cur: StateBooting, marks: bootMarks{stepBoot: "b1", stepAt: stamp(31)}, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateProvisioned},
		"booted after a later boot's discover":   {cur: StateBooting, marks: bootMarks{stepAt: stamp(40)}, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateBooting, wantMarks: &bootMarks{endBoot: "b1", endAt: stamp(30), stepAt: stamp(40)}},
		"booted after a later boot's script":     {cur: StateBooting, marks: bootMarks{stepBoot: "b2", stepAt: stamp(43)}, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateBooting, wantMarks: &reboot},
		"booted after its renewal":               {cur: StateBooting, marks: booting, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateProvisioned},
		"later boot's booted":                    {cur: StateBooting, marks: reboot, step: step{kind: event.Booted, boot: "b2", at: stamp(80)}, want: StateProvisioned, wantMarks: &bootMarks{endBoot: "b2", endAt: stamp(80), stepBoot: "b2", stepAt: stamp(43)}},
		"older boot's booted stored late":        {cur: StateProvisioned, marks: bootMarks{endBoot: "b2", endAt: stamp(80)}, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateProvisioned, wantMarks: &bootMarks{endBoot: "b2", endAt: stamp(80)}},
		"older booted while a later boot runs":   {cur: StateBooting, marks: bootMarks{endBoot: "b2", endAt: stamp(80), stepAt: stamp(90)}, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateBooting},
		"the same booted report again":           {cur: StateBooting, marks: reboot, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateBooting, wantMarks: &reboot},
		"booted after a failed rebuild":          {cur: StateFailed, marks: booting, step: step{kind: event.Booted, boot: "b1", at: stamp(30)}, want: StateProvisioned},
		"exit after the next boot's discover":    {cur: StateBooting, marks: bootMarks{stepAt: stamp(40)}, step: step{kind: event.IPXEScript, detail: event.NothingToBoot, boot: "b1", at: stamp(3)}, discovered: true, want: StateBooting},
		"exit after an older booted report":      {cur: StateBooting, marks: reboot, step: step{kind: event.IPXEScript, detail: event.NothingToBoot, boot: "b2", at: stamp(43)}, discovered: true, want: StateNothingToBoot},
	} {
		t.Run(name, func(t *testing.T) {
			got, marks := nextState(tc.cur, tc.marks, tc.step, tc.discovered)
			if got != tc.want {
				t.Errorf("nextState(%s, %+v, %+v, discovered %v) = %s, want %s", tc.cur, tc.marks, tc.step, tc.discovered, got, tc.want)
			}
			if tc.wantMarks != nil && marks != *tc.wantMarks {
				t.Errorf("marks %+v, want %+v", marks, *tc.wantMarks)
			}
		})
	}
}
