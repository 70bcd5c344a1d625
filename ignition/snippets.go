package ignition

import (
	"fmt"
	"sync"

	"github.com/undercloud/undercloud/sites"
)

// Snippets renders configs with each snippet parsed once: the snippets of
// a release are the same for every machine of a role, and parsing one
// (Butane's translation, Ignition's validation) costs more than the rest
// of a machine's config. A parsed snippet is only read afterwards (merged
// into each machine's config, never modified), so the machines share it.
// The zero value is ready; it is safe for concurrent use.
type Snippets struct {
	mu sync.Mutex
	m  map[snippetKey]*parsedSnippet
}

// maxSnippets bounds what Snippets keeps: a few site versions' snippets.
// Past it everything is dropped, and parsed again as asked.
const maxSnippets = 256

// snippetKey is everything parseSnippet's result depends on.
type snippetKey struct {
	file, kind, data string
	spec, image      string
}

// parsedSnippet is parseSnippet's result, with the paths the snippet
// writes (for the reporter's list) when it has no problems.
type parsedSnippet struct {
	once     sync.Once
	layer    layer
	problems sites.Problems
	paths    []string
	err      error
}

// Render is the package's Render, with the snippets parsed once.
func (c *Snippets) Render(in Input) ([]byte, error) { return render(in, c) }

// parse returns sn parsed for spec sp: kept in c, or parsed now when c is
// nil. The layer has no transcript: each render merges into its own copy.
func (c *Snippets) parse(sn sites.Snippet, sp spec, image string) *parsedSnippet {
	if c == nil {
		p := &parsedSnippet{}
		p.fill(sn, sp, image)
		return p
	}
	k := snippetKey{file: sn.File, kind: string(sn.Kind), data: string(sn.Data), spec: sp.version, image: image}
	c.mu.Lock()
	p, ok := c.m[k]
	if !ok {
		if c.m == nil || len(c.m) >= maxSnippets {
			c.m = map[snippetKey]*parsedSnippet{}
		}
		p = &parsedSnippet{}
		c.m[k] = p
	}
	c.mu.Unlock()
	p.once.Do(func() { p.fill(sn, sp, image) })
	return p
}

func (p *parsedSnippet) fill(sn sites.Snippet, sp spec, image string) {
	p.layer, p.problems = parseSnippet(sn, sp, image)
	if len(p.problems) > 0 {
		return
	}
	if p.paths, p.err = writtenPaths(p.layer.cfg); p.err != nil {
		p.err = fmt.Errorf("snippet %s: %w", sn.File, p.err)
	}
}
