package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAudit(t *testing.T) {
	clk := newClock()
	db := openTest(t, clk)
	ctx := context.Background()
	at := time.Date(2026, 2, 1, 8, 0, 0, 123456789, time.UTC)
	entries := []AuditEntry{
		{At: at, Actor: "alice", Source: "ui 10.0.0.5", Action: "rebuild", Target: "lab/lab-w1", Detail: "to v2", Result: "ok"},
		{Actor: "bob", Source: "api 10.0.0.6", Action: "rollout-start", Target: "lab", Result: "denied: operator role required"},
	}
	var stored []AuditEntry
	for _, e := range entries {
		got, err := db.RecordAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, got)
	}
	if stored[0].ID >= stored[1].ID {
		t.Errorf("IDs %d, %d: want increasing", stored[0].ID, stored[1].ID)
	}
	want := []AuditEntry{
		{ID: stored[1].ID, At: clk.Now(), Actor: "bob", Source: "api 10.0.0.6", Action: "rollout-start", Target: "lab", Result: "denied: operator role required"},
		{ID: stored[0].ID, At: at.Truncate(time.Millisecond), Actor: "alice", Source: "ui 10.0.0.5", Action: "rebuild", Target: "lab/lab-w1", Detail: "to v2", Result: "ok"},
	}
	got, err := db.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Audit (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]AuditEntry{stored[1]}, want[:1]); diff != "" {
		t.Errorf("RecordAudit returned (-got +want):\n%s", diff)
	}
	got, err = db.Audit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Actor != "bob" {
		t.Errorf("Audit(1) = %+v, want bob's entry only", got)
	}
}

func TestRecordAuditRequiresFields(t *testing.T) {
	db := openTest(t, nil)
	for name, e := range map[string]AuditEntry{
		"no actor":  {Action: "rebuild", Result: "ok"},
		"no action": {Actor: "alice", Result: "ok"},
		"no result": {Actor: "alice", Action: "rebuild"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := db.RecordAudit(context.Background(), e); err == nil {
				t.Error("RecordAudit succeeded, want an error")
			}
		})
	}
	got, err := db.Audit(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("Audit = %+v, want nothing stored", got)
	}
}
