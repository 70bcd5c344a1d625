// Package siterepo builds the example site repo: a real git repository with
// tagged config versions for a 3-machine lab site and a second site. Tests
// and `make demo` use it; `go run ./examples/site-repo/cmd/make-site-repo`
// builds one by hand.
//
// Versions on branch main:
//
//	v1  lab (1 master, 2 workers) and second; bindings lab: v1, second: v1;
//	    lab's machines are labelled rack r1 (lab-m1, lab-w1) and r2 (lab-w2)
//	v2  v1 with one file changed: the lab's motd snippet
//
// and on branch broken (never bound by default):
//
//	v3-broken  v2 with a second master, which the gate must reject
package siterepo

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

//go:embed all:files
var embedded embed.FS

// Options say which boot artifacts the image catalog points at.
type Options struct {
	// Kernel, Initrd, Rootfs and Disk are the test node image's files (see
	// `make image`): vmlinuz, initrd.img, rootfs.img (the live root) and
	// disk.img.gz (what image testnode-install writes to a disk). When
	// Kernel or Initrd is empty, small placeholder files are written to
	// DIR-artifacts, next to the repo: the repo then validates and renders,
	// but cannot boot a machine.
	Kernel, Initrd, Rootfs, Disk string
	// ArtifactRoot is the directory the server will read the artifacts
	// from (its --artifact-root): Kernel and Initrd must lie inside it, and
	// the catalog names them by paths relative to it. Empty means the
	// directory of Kernel.
	ArtifactRoot string
}

// Repo is an example site repo on disk, with helpers to make new versions.
type Repo struct {
	Dir string
	// ArtifactRoot is the directory the catalog's artifact paths are
	// relative to: give it to the server as --artifact-root. Empty for a
	// repo opened with Open.
	ArtifactRoot string
	repo         *git.Repository
	when         time.Time
}

// Build creates the example repo in dir (which must not exist or be empty).
func Build(dir string, opt Options) (*Repo, error) {
	if opt.Kernel == "" || opt.Initrd == "" {
		var err error
		if opt.Kernel, opt.Initrd, opt.Rootfs, opt.Disk, err = placeholders(dir + "-artifacts"); err != nil {
			return nil, err
		}
		opt.ArtifactRoot = dir + "-artifacts"
	}
	if opt.ArtifactRoot == "" {
		opt.ArtifactRoot = filepath.Dir(opt.Kernel)
	}
	root, err := filepath.Abs(opt.ArtifactRoot)
	if err != nil {
		return nil, err
	}
	opt.ArtifactRoot = root
	files, err := baseFiles(opt)
	if err != nil {
		return nil, err
	}
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		return nil, fmt.Errorf("init example repo %s: %w", dir, err)
	}
	r := &Repo{Dir: dir, ArtifactRoot: root, repo: repo, when: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}
	if _, err := r.Commit("lab and second sites", files, "v1"); err != nil {
		return nil, err
	}
	motd := "sites/lab/snippets/common.bu"
	v2 := strings.Replace(string(files[motd]), "config v1", "config v2", 1)
	if _, err := r.Commit("lab: new motd", map[string][]byte{motd: []byte(v2)}, "v2"); err != nil {
		return nil, err
	}
	if err := r.Checkout("broken", true); err != nil {
		return nil, err
	}
	site := "sites/lab/site.yaml"
	cur, err := os.ReadFile(filepath.Join(dir, site))
	if err != nil {
		return nil, err
	}
	broken := strings.Replace(string(cur), "role: worker", "role: master", 1)
	if _, err := r.Commit("lab: promote lab-w1 to master (breaks etcd quorum)", map[string][]byte{site: []byte(broken)}, "v3-broken"); err != nil {
		return nil, err
	}
	if err := r.Checkout("main", false); err != nil {
		return nil, err
	}
	return r, nil
}

// Open opens an example repo built before.
func Open(dir string) (*Repo, error) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("open example repo %s: %w", dir, err)
	}
	return &Repo{Dir: dir, repo: repo, when: time.Now().UTC()}, nil
}

// Commit writes files (a nil value deletes the file) on the current branch,
// commits them and tags the commit when tag is not empty. It returns the
// commit hash.
func (r *Repo) Commit(message string, files map[string][]byte, tag string) (string, error) {
	wt, err := r.repo.Worktree()
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if files[name] == nil {
			if _, err := wt.Remove(name); err != nil {
				return "", fmt.Errorf("remove %s: %w", name, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return "", err
		}
		if _, err := wt.Add(name); err != nil {
			return "", fmt.Errorf("add %s: %w", name, err)
		}
	}
	r.when = r.when.Add(time.Hour)
	sig := &object.Signature{Name: "Site Ops", Email: "ops@lab.example", When: r.when}
	h, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig, AllowEmptyCommits: true})
	if err != nil {
		return "", fmt.Errorf("commit %q: %w", message, err)
	}
	if tag != "" {
		if _, err := r.repo.CreateTag(tag, h, nil); err != nil {
			return "", fmt.Errorf("tag %s: %w", tag, err)
		}
	}
	return h.String(), nil
}

// Bind points a site's binding at ref with a commit on main, as an operator's
// pull request would, and returns to the branch it was on.
func (r *Repo) Bind(site, ref string) (string, error) {
	head, err := r.repo.Head()
	if err != nil {
		return "", err
	}
	if err := r.Checkout("main", false); err != nil {
		return "", err
	}
	defer r.Checkout(head.Name().Short(), false)
	data, err := os.ReadFile(filepath.Join(r.Dir, "bindings.yaml"))
	if err != nil {
		return "", err
	}
	var out []string
	found := false
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.HasPrefix(line, site+":") {
			line, found = site+": "+ref, true
		}
		out = append(out, line)
	}
	if !found {
		out = append(out, site+": "+ref)
	}
	return r.Commit(fmt.Sprintf("bind %s to %s", site, ref), map[string][]byte{"bindings.yaml": []byte(strings.Join(out, "\n") + "\n")}, "")
}

// Checkout switches to branch, creating it from HEAD when create is set.
func (r *Repo) Checkout(branch string, create bool) error {
	wt, err := r.repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(branch), Create: create}); err != nil {
		return fmt.Errorf("checkout %s: %w", branch, err)
	}
	return nil
}

// File returns a file of the current worktree.
func (r *Repo) File(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(r.Dir, filepath.FromSlash(name)))
}

// baseFiles renders the embedded tree: templates (.tmpl) get the artifacts'
// paths (relative to the artifact root) and digests.
func baseFiles(opt Options) (map[string][]byte, error) {
	data := map[string]string{}
	for _, a := range []struct{ name, path string }{
		{"Kernel", opt.Kernel}, {"Initrd", opt.Initrd}, {"Rootfs", opt.Rootfs}, {"Disk", opt.Disk},
	} {
		if a.path == "" {
			return nil, fmt.Errorf("example site repo: no %s file: give the test image's kernel, initrd, rootfs and disk image", strings.ToLower(a.name))
		}
		sum, err := fileSHA256(a.path)
		if err != nil {
			return nil, err
		}
		rel, err := underRoot(opt.ArtifactRoot, a.path)
		if err != nil {
			return nil, err
		}
		data[a.name], data[a.name+"SHA256"] = rel, sum
	}
	out := map[string][]byte{}
	err := fs.WalkDir(embedded, "files", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "files/")
		if strings.HasSuffix(name, ".tmpl") {
			t, err := template.New(name).Option("missingkey=error").Parse(string(b))
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := t.Execute(&buf, data); err != nil {
				return err
			}
			name, b = strings.TrimSuffix(name, ".tmpl"), buf.Bytes()
		}
		out[name] = b
		return nil
	})
	return out, err
}

// underRoot returns path relative to root, which it must lie inside.
func underRoot(root, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("artifact %s is not inside the artifact root %s", path, root)
	}
	return filepath.ToSlash(rel), nil
}

func placeholders(dir string) (kernel, initrd, rootfs, disk string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", "", "", err
	}
	paths := []string{filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img"),
		filepath.Join(dir, "rootfs.img"), filepath.Join(dir, "disk.img.gz")}
	for _, p := range paths {
		what := "placeholder " + filepath.Base(p) + ": build the test image with `make image`\n"
		if err := os.WriteFile(p, []byte(what), 0o644); err != nil {
			return "", "", "", "", err
		}
	}
	return paths[0], paths[1], paths[2], paths[3], nil
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
