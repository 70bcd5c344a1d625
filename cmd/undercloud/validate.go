package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/undercloud/undercloud/ignition"
	"github.com/undercloud/undercloud/images"
	"github.com/undercloud/undercloud/provision"
	"github.com/undercloud/undercloud/pxe"
	"github.com/undercloud/undercloud/sites"
)

// repoFlags are the flags validate and render share.
type repoFlags struct {
	repo, site, ref, branch, artifactRoot string
}

func (f *repoFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.repo, "repo", os.Getenv("UNDERCLOUD_REPO"), "site repo: a local path, file://, http(s):// or ssh:// URL (env UNDERCLOUD_REPO)")
	fs.StringVar(&f.ref, "ref", "", "check the sites as they are at this tag, branch or commit, instead of at their bindings")
	fs.StringVar(&f.branch, "branch", "main", "branch holding bindings.yaml")
	fs.StringVar(&f.artifactRoot, "artifact-root", os.Getenv("UNDERCLOUD_ARTIFACT_ROOT"), "the only directory local artifacts are read from, as serve's --artifact-root: relative paths are resolved against it, absolute paths and file:// URLs must lie inside it; unset, local artifacts are refused (env UNDERCLOUD_ARTIFACT_ROOT)")
}

// openRepo opens a local site repo in place (so --ref HEAD means what git
// means there), or fetches a remote one into a temporary mirror.
func openRepo(ctx context.Context, url string) (*sites.Repo, func(), error) {
	if url == "" {
		return nil, nil, usageError("--repo is required")
	}
	if st, err := os.Stat(url); err == nil && st.IsDir() {
		r, err := sites.OpenLocal(url)
		return r, func() {}, err
	}
	dir, err := os.MkdirTemp("", "undercloud-repo-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	r := &sites.Repo{URL: url, Dir: dir}
	if err := r.Fetch(ctx); err != nil {
		cleanup()
		return nil, nil, err
	}
	return r, cleanup, nil
}

// candidate is one site's config at the version to check.
type candidate struct {
	site    string
	version sites.Version
	config  *sites.Config
}

// candidates loads the sites to check: at --ref when given, else each at its
// binding. Load problems are returned, not fatal.
func candidates(r *sites.Repo, f repoFlags) ([]candidate, sites.Problems, error) {
	load := func(ref string) (sites.Version, *sites.Config, sites.Problems, error) {
		v, err := r.Resolve(ref)
		if err != nil {
			return v, nil, nil, err
		}
		files, err := r.Files(v.Commit)
		if err != nil {
			return v, nil, nil, err
		}
		cfg, ps := sites.Load(files)
		return v, cfg, ps, nil
	}
	if f.ref != "" {
		v, cfg, ps, err := load(f.ref)
		if err != nil {
			return nil, nil, err
		}
		names := cfg.SiteNames()
		if f.site != "" {
			names = []string{f.site}
		}
		var out []candidate
		for _, n := range names {
			out = append(out, candidate{n, v, cfg})
		}
		return out, ps, nil
	}
	bindings, _, ps, err := r.Bindings(f.branch)
	if err != nil || len(ps) > 0 {
		return nil, ps, err
	}
	names := make([]string, 0, len(bindings))
	for n := range bindings {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []candidate
	for _, n := range names {
		v, cfg, lps, err := load(bindings[n])
		if err != nil {
			ps = append(ps, sites.Problem{File: sites.BindingsFile, Field: n, Message: err.Error()})
			continue
		}
		ps = append(ps, lps...)
		out = append(out, candidate{n, v, cfg})
	}
	return out, ps, nil
}

func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f repoFlags
	f.register(fs)
	fs.StringVar(&f.site, "site", "", "check only this site (default: every site)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: undercloud validate --repo PATH_OR_URL [--site NAME] [--ref REF]

Runs the validation gate the server runs before it makes a version active:
schema and unknown fields, duplicate MACs/IPs/host names within and across
sites, addresses outside their subnet or inside a dynamic range, unknown images
and roles, etcd quorum (an odd number of masters), artifact digests, and every
machine's Ignition config rendered and validated.

Without --ref, each site is checked at the version its binding names (as the
server would); with --ref, every site is checked as it is at REF (a pull
request's head, say). Exit status 0 when valid; 1 with one line per problem,
file:field: message; 2 on a usage error.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	cands, ps, err := checked(ctx, f)
	if err != nil {
		return err
	}
	if len(ps) > 0 {
		for _, p := range ps {
			fmt.Fprintln(stdout, p.String())
		}
		return exitError{code: 1, msg: fmt.Sprintf("%d problem(s)", len(ps))}
	}
	for _, c := range cands {
		if f.site == "" || c.site == f.site {
			fmt.Fprintf(stdout, "ok %s at %s (%s)\n", c.site, c.version.Label(), c.version.Short())
		}
	}
	return nil
}

// checked fetches the repo, loads the sites to check and runs the gate on
// them: what validate and render both need before saying anything.
func checked(ctx context.Context, f repoFlags) ([]candidate, sites.Problems, error) {
	r, cleanup, err := openRepo(ctx, f.repo)
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	cands, ps, err := candidates(r, f)
	if err != nil {
		return nil, nil, err
	}
	if f.site != "" && !slices.ContainsFunc(cands, func(c candidate) bool { return c.site == f.site }) && len(ps) == 0 {
		return nil, nil, exitError{code: 1, msg: fmt.Sprintf("site %q not found in the repo", f.site)}
	}
	if len(ps) == 0 {
		ps = checkCandidates(ctx, cands, f)
	}
	ps.Sort()
	return cands, ps, nil
}

// checkCandidates runs the gate on each candidate (only the one --site
// names, when it is set), with the other candidates as the other sites for
// the cross-site checks: each conflict is reported once, on the later site.
func checkCandidates(ctx context.Context, cands []candidate, f repoFlags) sites.Problems {
	gate := sites.Gate{Renderer: ignition.Renderer{}, Artifacts: &images.Store{ArtifactRoot: f.artifactRoot}}
	var ps sites.Problems
	for i, c := range cands {
		if f.site != "" && c.site != f.site {
			continue
		}
		others := map[string]*sites.Site{}
		for j, o := range cands {
			if (j < i || f.site != "") && j != i && o.config.Sites[o.site] != nil {
				others[o.site] = o.config.Sites[o.site]
			}
		}
		ps = append(ps, gate.Check(ctx, c.config, []string{c.site}, c.version, others)...)
	}
	return ps
}

func runRender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f repoFlags
	f.register(fs)
	fs.StringVar(&f.site, "site", "", "site of the machine (required)")
	machine := fs.String("machine", "", "machine name (required)")
	bootstrapped := fs.Bool("bootstrapped", false, "render as after the site's etcd cluster was bootstrapped (masters get --initial-cluster-state existing)")
	baseURL := fs.String("base-url", "http://<server>", "the server's URL as the machine reaches it, for the booted and heartbeat URLs of "+ignition.ReportEnvPath)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: undercloud render --repo PATH_OR_URL --site NAME --machine NAME [--ref REF]

Prints the machine's Ignition config, exactly as the server would serve it, at
REF or at the site's binding. The site must pass the validation gate first.
Pipe it to ignition-validate to check it with Ignition's own validator.
The per-boot values (`+ignition.ReportEnvPath+`) show placeholders:
`+pxe.PlaceholderBootID+`, `+pxe.PlaceholderToken+`, `+pxe.PlaceholderHeartbeat+`.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if f.site == "" || *machine == "" {
		fs.Usage()
		return usageError("--site and --machine are required")
	}
	cands, ps, err := checked(ctx, f)
	if err != nil {
		return err
	}
	if len(ps) > 0 {
		for _, p := range ps {
			fmt.Fprintln(stderr, p.String())
		}
		return exitError{code: 1, msg: "the version does not pass the validation gate; nothing rendered"}
	}
	i := slices.IndexFunc(cands, func(c candidate) bool { return c.site == f.site })
	rel, err := cands[i].config.Release(f.site, cands[i].version)
	if err != nil {
		return err
	}
	m := rel.Site.Machine(*machine)
	if m == nil {
		return exitError{code: 1, msg: fmt.Sprintf("site %s has no machine %q at %s", f.site, *machine, rel.Version.Label())}
	}
	// The server's own path (provision.ServedConfig), credentials left out.
	out, err := provision.ServedConfig(ignition.Input{Release: rel, Machine: m, Bootstrapped: *bootstrapped},
		pxe.PlaceholderRequest(strings.TrimSuffix(*baseURL, "/"), string(m.MAC), rel.Version.Commit))
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
