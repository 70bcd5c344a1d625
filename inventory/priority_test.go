package inventory

import (
	"syscall"
	"testing"
)

// TestLowerPriority: the goroutine's thread gets the nice value, and only
// that thread: the test's own keeps its priority.
func TestLowerPriority(t *testing.T) {
	nice := func() int {
		// The raw syscall returns 20 - nice.
		p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		if err != nil {
			t.Fatal(err)
		}
		return 20 - p
	}
	before := nice()
	got := make(chan int)
	go func() {
		lowerPriority(writerNice)
		got <- nice()
	}()
	if n := <-got; n != writerNice {
		t.Errorf("niced goroutine's thread: nice %d, want %d", n, writerNice)
	}
	if n := nice(); n != before {
		t.Errorf("the caller's thread changed from nice %d to %d", before, n)
	}
}
