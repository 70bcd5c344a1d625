package rebuild

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/undercloud/undercloud/sites"
	"github.com/undercloud/undercloud/testvm/testkit"
)

// After a restart the log names every rollout and rebuild the engine
// resumes, with its state and its target as the operator wrote it.
func TestResumeLogsWhatItTakesOver(t *testing.T) {
	f := newFixture(t, labRelease())
	if _, err := f.e.StartRollout(f.ctx, "lab", sites.Selection{Machines: []string{"lab-w1"}}, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Rebuild(f.ctx, Request{Site: "lab", Machine: "lab-m1", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.restart()
	var logs testkit.SyncBuffer
	f.e.Log = slog.New(slog.NewTextHandler(&logs, nil))
	f.e.resume(f.ctx)

	var got []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		_, msg, _ := strings.Cut(l, "msg=")
		msg, _, _ = strings.Cut(msg, `" `)
		got = append(got, strings.Trim(msg, `"`))
	}
	want := []string{
		"resuming rollout 1 of lab (running, target v2 (222222222222))",
		"resuming rebuild 1 of lab/lab-m1 (booting, target v2 (222222222222))",
		"resuming rebuild 2 of lab/lab-w1 (booting, target v2 (222222222222), of rollout 1)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged\n%s\nwant\n%s\n(full log:\n%s)", strings.Join(got, "\n"), strings.Join(want, "\n"), logs.String())
	}
	if !strings.Contains(logs.String(), `level=INFO msg="resuming rebuild 1 of lab/lab-m1`) ||
		!strings.Contains(logs.String(), "site=lab rebuild=1 machine=lab-m1 mac=") {
		t.Errorf("the lines are not Info with the log keys:\n%s", logs.String())
	}
}
