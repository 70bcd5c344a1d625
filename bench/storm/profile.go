package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// profileChunk is the length of each CPU profile taken during a storm:
// /debug/pprof/profile needs its duration up front, and a storm's is not
// known, so profiles are taken back to back until the storm ends.
// `go tool pprof` merges the files it is given.
const profileChunk = 3 // seconds

// profiler takes CPU profiles of the server through its operator API
// (/debug/pprof/profile, operator role) until stopped, into dir as
// name-NN.pb.gz.
type profiler struct {
	stopped atomic.Bool
	wg      sync.WaitGroup
	files   []string
	err     error
}

func startProfiler(ctx context.Context, s *ucServer, dir, name string) *profiler {
	p := &profiler{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := 0; ctx.Err() == nil && !p.stopped.Load(); i++ {
			path := filepath.Join(dir, fmt.Sprintf("%s-%02d.pb.gz", name, i))
			if err := s.profile(ctx, path); err != nil {
				if ctx.Err() == nil {
					p.err = err
				}
				return
			}
			p.files = append(p.files, path)
		}
	}()
	return p
}

// stop ends profiling once the chunk under way is written (the storm's
// tail is in it), and returns the files written.
func (p *profiler) stop() ([]string, error) {
	p.stopped.Store(true)
	p.wg.Wait()
	return p.files, p.err
}

func (s *ucServer) profile(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", opBase, profileChunk), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("cpu profile: %s: %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	return f.Close()
}
