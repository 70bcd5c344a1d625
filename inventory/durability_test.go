package inventory

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// durabilityEnv makes the test binary a durability child: the value is
// "path,offset,stall", the database, the first lease number, and whether
// the child holds its writer so that no lease reaches the database (each
// is then only in the lease journal).
const durabilityEnv = "UNDERCLOUD_INVENTORY_DURABILITY_CHILD"

const durabilityLeases = 200

// TestDurabilityAcrossKill runs a child process (this test binary again)
// that commits leases from four goroutines and prints "committed i" once
// Bind(i) has returned, and kills it with SIGKILL partway. Every lease the
// child reported must be in the database when it is opened again. In the
// last round the child's writer is stalled: what it reported is only in
// the lease journal.
func TestDurabilityAcrossKill(t *testing.T) {
	if v := os.Getenv(durabilityEnv); v != "" {
		durabilityChild(v) // does not return
	}
	path := filepath.Join(t.TempDir(), "durable.db")
	partway := 0
	for round, killAfter := range []int{20, 60, 120, 150} {
		offset, stall := round*1000, round == 3
		reported := runAndKill(t, path, offset, killAfter, stall)
		if len(reported) < durabilityLeases {
			partway++
		}
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		for _, i := range reported {
			l, err := db.LeaseByMAC(context.Background(), testMAC(i))
			switch {
			case err != nil:
				t.Errorf("round %d: lease %d reported committed, then lost: %v", round, i, err)
			case l.IP != testIP(i) || l.State != LeaseBound:
				t.Errorf("round %d: lease %d stored as %s %s", round, i, l.IP, l.State)
			}
		}
		if stored, _ := db.JournalReplayed(); stall && stored < len(reported) {
			t.Errorf("round %d: %d leases replayed from the journal, want at least the %d reported", round, stored, len(reported))
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d reports; all present", round, len(reported))
	}
	if partway == 0 {
		t.Error("the child finished every round before it was killed: nothing was tested mid-write")
	}
}

// runAndKill starts a child committing leases offset.. and kills it after
// it has reported killAfter commits. It returns the lease numbers reported.
func runAndKill(t *testing.T, path string, offset, killAfter int, stall bool) []int {
	t.Helper()
	var reported []int
	runKilled(t, "TestDurabilityAcrossKill", fmt.Sprintf("%s=%s,%d,%t", durabilityEnv, path, offset, stall), func(line string) childAction {
		if line == "done" {
			return childDone
		}
		n, ok := strings.CutPrefix(line, "committed ")
		if !ok {
			return childGoOn // test framework output
		}
		i, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("child said %q", line)
		}
		reported = append(reported, i)
		if len(reported) == killAfter {
			// Lines already in the pipe were printed after their commit
			// returned: they count too.
			return childKill
		}
		return childGoOn
	})
	return reported
}

// childAction is what runKilled does after a line the child printed.
type childAction int

const (
	childGoOn childAction = iota // read the next line
	childKill                    // SIGKILL the child, and read what is already in the pipe
	childDone                    // stop reading; SIGKILL the child
)

// runKilled runs this test binary again as a child running only test,
// with env (NAME=value) set, hands each line of its standard output to
// onLine, and makes sure it ends by SIGKILL: a child that failed and
// exited is a failure of the test.
func runKilled(t *testing.T, test, env string, onLine func(string) childAction) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitOnce sync.Once
	wait := func() { waitOnce.Do(func() { cmd.Wait() }) }
	t.Cleanup(func() {
		cmd.Process.Kill()
		wait()
	})
	timeout := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		a := onLine(sc.Text())
		if a == childDone {
			break
		}
		if a == childKill {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL (did it fail?)", cmd.ProcessState)
	}
}

// durabilityChild commits durabilityLeases leases through the public API,
// printing "committed i" after each Bind returns, then "done", then waits
// to be killed.
func durabilityChild(arg string) {
	f := strings.Split(arg, ",")
	offset, err := strconv.Atoi(f[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad offset:", err)
		os.Exit(2)
	}
	db, err := Open(context.Background(), f[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if f[2] == "true" {
		inTx := make(chan struct{})
		go db.do(context.Background(), func(*tx) error {
			close(inTx)
			select {} // the writer never commits again
		})
		<-inTx
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := g; k < durabilityLeases; k += 4 {
				i := offset + k
				if _, err := db.Bind(context.Background(), LeaseRequest{MAC: testMAC(i), IP: testIP(i), Site: "lab"}); err != nil {
					fmt.Fprintln(os.Stderr, "bind:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "committed %d\n", i) // one write(2): no buffering to lose
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fmt.Println("done")
	time.Sleep(time.Hour) // killed here at the latest; never Close
}
