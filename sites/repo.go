package sites

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Repo is the server's local mirror of the site repo. The server never writes
// to the site repo itself: it fetches into a bare mirror under its data
// directory and reads every version from there, so it keeps serving from the
// last good copy when the remote is down.
type Repo struct {
	// URL is the site repo: a local path, file://, http(s):// or ssh:// URL.
	URL string
	// Dir is the local bare mirror; created on first fetch.
	Dir string
	// Auth is used for http(s) and ssh remotes; nil uses go-git's defaults
	// (the ssh agent for ssh://).
	Auth transport.AuthMethod
	// Timeout bounds one fetch (default 60s).
	Timeout time.Duration
	Log     *slog.Logger

	mu     sync.Mutex
	repo   *git.Repository
	status FetchStatus
	local  bool // opened in place by OpenLocal: never fetched
}

// OpenLocal opens the repository at path (a working tree or a bare
// repository) in place, read-only, for `undercloud validate` and `render`
// in a site repo's CI: refs resolve as git resolves them there -- HEAD, a
// detached commit on no branch, HEAD~1 -- which a mirror of the branches
// and tags cannot do. Fetch does nothing on it.
func OpenLocal(path string) (*Repo, error) {
	repo, err := git.PlainOpenWithOptions(path, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("open site repo %s: %w", path, err)
	}
	return &Repo{URL: path, Dir: path, repo: repo, local: true}, nil
}

// FetchStatus says how fresh the local mirror is.
type FetchStatus struct {
	URL         string    `json:"url"`
	LastAttempt time.Time `json:"last_attempt"`
	LastSuccess time.Time `json:"last_success"`
	// Error is the last fetch's failure; while set, the server serves from
	// the copy fetched at LastSuccess.
	Error string `json:"error,omitempty"`
}

// ErrNoMirror means the repo was never fetched successfully: there is no
// local copy to serve from.
var ErrNoMirror = errors.New("the site repo has never been fetched")

func (r *Repo) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Status returns the state of the last fetch.
func (r *Repo) Status() FetchStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.URL = r.URL
	return s
}

// Fetch brings the mirror up to date with the remote. When the remote cannot
// be reached the mirror is left as it was and the error is returned (and kept
// in Status); callers go on serving from the local copy.
func (r *Repo) Fetch(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.local {
		return nil
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r.status.LastAttempt = time.Now()
	err := r.fetch(ctx)
	if err != nil {
		r.status.Error = err.Error()
		if r.repo != nil {
			r.log().Warn("site repo fetch failed; serving from the last good copy",
				"url", r.URL, "last_success", r.status.LastSuccess, "err", err)
		}
		return err
	}
	r.status.Error = ""
	r.status.LastSuccess = r.status.LastAttempt
	return nil
}

func (r *Repo) fetch(ctx context.Context) error {
	if err := r.open(); err != nil {
		return err
	}
	url := r.remoteURL()
	specs := []config.RefSpec{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}
	if err := r.setRemote(url, specs); err != nil {
		return err
	}
	err := r.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin", RefSpecs: specs, Auth: r.Auth, Force: true, Tags: git.NoTags, Prune: true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch site repo %s: %w", r.URL, err)
	}
	return nil
}

// open opens the mirror, creating an empty bare repository on first use.
func (r *Repo) open() error {
	if r.repo != nil {
		return nil
	}
	repo, err := git.PlainOpen(r.Dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(r.Dir, 0o750); err != nil {
			return fmt.Errorf("create site repo mirror %s: %w", r.Dir, err)
		}
		repo, err = git.PlainInit(r.Dir, true)
	}
	if err != nil {
		return fmt.Errorf("open site repo mirror %s: %w", r.Dir, err)
	}
	r.repo = repo
	return nil
}

func (r *Repo) setRemote(url string, specs []config.RefSpec) error {
	cfg, err := r.repo.Config()
	if err != nil {
		return fmt.Errorf("read mirror config %s: %w", r.Dir, err)
	}
	want := &config.RemoteConfig{Name: "origin", URLs: []string{url}, Fetch: specs}
	if cur, ok := cfg.Remotes["origin"]; ok && len(cur.URLs) == 1 && cur.URLs[0] == url {
		return nil
	}
	cfg.Remotes["origin"] = want
	if err := r.repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("set mirror remote %s: %w", url, err)
	}
	return nil
}

// remoteURL turns a plain local path into an absolute one, which git needs.
func (r *Repo) remoteURL() string {
	if strings.Contains(r.URL, "://") || strings.HasPrefix(r.URL, "git@") {
		return r.URL
	}
	if abs, err := filepath.Abs(r.URL); err == nil {
		return abs
	}
	return r.URL
}

func (r *Repo) mirror() (*git.Repository, error) {
	if r.repo == nil {
		if _, err := os.Stat(filepath.Join(r.Dir, "HEAD")); err != nil {
			return nil, ErrNoMirror
		}
		if err := r.open(); err != nil {
			return nil, err
		}
	}
	return r.repo, nil
}

// Resolve turns a ref (tag, branch or commit hash, full or abbreviated, or
// a revision such as v2^ or main~3; in a repo opened with OpenLocal also
// HEAD and HEAD~1) into a Version.
func (r *Repo) Resolve(ref string) (Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	repo, err := r.mirror()
	if err != nil {
		return Version{}, err
	}
	ref = strings.TrimSpace(ref)
	var h *plumbing.Hash
	for _, rev := range []string{"refs/tags/" + ref, "refs/heads/" + ref, ref} {
		if h, err = repo.ResolveRevision(plumbing.Revision(rev)); err == nil {
			break
		}
	}
	if err != nil {
		return Version{}, fmt.Errorf("ref %q is not a tag, branch or commit of %s", ref, r.URL)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return Version{}, fmt.Errorf("ref %q: %w", ref, err)
	}
	v := versionOf(c)
	v.Ref = ref
	v.Tags, err = tagsOf(repo, c.Hash)
	return v, err
}

func versionOf(c *object.Commit) Version {
	msg, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return Version{
		Commit:  c.Hash.String(),
		Message: msg,
		Author:  c.Author.Name,
		Time:    c.Committer.When.UTC(),
	}
}

func tagsOf(repo *git.Repository, commit plumbing.Hash) ([]string, error) {
	iter, err := repo.Tags()
	if err != nil {
		return nil, fmt.Errorf("list tags: %w", err)
	}
	var tags []string
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		h := ref.Hash()
		if tag, err := repo.TagObject(h); err == nil { // annotated: peel
			c, err := tag.Commit()
			if err != nil {
				return nil
			}
			h = c.Hash
		}
		if h == commit {
			tags = append(tags, ref.Name().Short())
		}
		return nil
	})
	sort.Strings(tags)
	return tags, err
}

// Files reads every file of the repo at a commit. Files larger than 1 MiB
// are refused: a site repo holds configs, not images.
func (r *Repo) Files(commit string) (Files, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	repo, err := r.mirror()
	if err != nil {
		return nil, err
	}
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("tree of %s: %w", commit, err)
	}
	files := Files{}
	err = tree.Files().ForEach(func(f *object.File) error {
		if f.Size > 1<<20 {
			return fmt.Errorf("%s is %d bytes: a site repo holds configs, put images in the image catalog by digest", f.Name, f.Size)
		}
		rd, err := f.Reader()
		if err != nil {
			return err
		}
		defer rd.Close()
		b, err := io.ReadAll(rd)
		files[f.Name] = b
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read files at %s: %w", commit, err)
	}
	return files, nil
}

// Bindings reads bindings.yaml at the tip of a branch (the tracked branch) and
// returns it with the branch's version.
func (r *Repo) Bindings(branch string) (map[string]string, Version, Problems, error) {
	v, err := r.Resolve(branch)
	if err != nil {
		return nil, Version{}, nil, fmt.Errorf("tracked branch: %w", err)
	}
	files, err := r.Files(v.Commit)
	if err != nil {
		return nil, v, nil, err
	}
	data, ok := files[BindingsFile]
	if !ok {
		return nil, v, Problems{{File: BindingsFile, Message: fmt.Sprintf("missing on branch %s at %s", branch, v.Short())}}, nil
	}
	b, ps := ParseBindings(data)
	return b, v, ps, nil
}
