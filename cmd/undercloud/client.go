package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/undercloud/undercloud/inventory"
	"github.com/undercloud/undercloud/web"
)

// apiClient talks to a running server's JSON API (docs/api.md) with a token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// clientFlags registers --server, --token and --ca (UNDERCLOUD_SERVER,
// UNDERCLOUD_TOKEN, UNDERCLOUD_CA) on fs.
func clientFlags(fs *flag.FlagSet) func() (*apiClient, error) {
	server := fs.String("server", envOr("UNDERCLOUD_SERVER", "https://127.0.0.1:8443"),
		"the server's operator URL, its --operator-listen address (env UNDERCLOUD_SERVER)")
	token := fs.String("token", "", "API token (env UNDERCLOUD_TOKEN); changes need an operator token")
	ca := fs.String("ca", envOr("UNDERCLOUD_CA", ""),
		"PEM certificates to trust for an https server instead of the system's: the server's self-signed\n"+
			"DATA-DIR/operator-tls.crt (copy it; its SHA-256 fingerprint is in the server's log) or your CA (env UNDERCLOUD_CA)")
	return func() (*apiClient, error) {
		t := *token
		if t == "" {
			t = os.Getenv("UNDERCLOUD_TOKEN")
		}
		if t == "" {
			return nil, usageError("no API token: give --token or set UNDERCLOUD_TOKEN (a token from the server's secrets file)")
		}
		u, err := url.Parse(*server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageError("--server %q: want http(s)://host:port", *server)
		}
		hc, err := httpClient(*ca)
		if err != nil {
			return nil, err
		}
		return &apiClient{base: strings.TrimRight(*server, "/"), token: t, http: hc}, nil
	}
}

// httpClient is the CLI's HTTP client, trusting the certificates of the PEM
// file ca for https when one is given. Verification is never turned off: a
// self-signed server certificate is trusted by naming it.
func httpClient(ca string) (*http.Client, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	if ca == "" {
		return c, nil
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, usageError("--ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usageError("--ca %s: no PEM certificate in it", ca)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.Transport = t
	return c, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// do sends a request without a body and decodes the JSON answer into out;
// an error answer becomes an error carrying the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, out any) error {
	return c.send(ctx, method, path, nil, out)
}

// send is do with a JSON body in, unless in is nil.
func (c *apiClient) send(ctx context.Context, method, path string, in, out any) error {
	var reqBody []byte
	if in != nil {
		var err error
		if reqBody, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(reqBody))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return exitError{code: 1, msg: fmt.Sprintf("%s (HTTP %d)", e.Error, resp.StatusCode)}
		}
		return exitError{code: 1, msg: fmt.Sprintf("%s %s: HTTP %d", method, path, resp.StatusCode)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := clientFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: undercloud status [SITE]\n\nShows each site's bound, active and rejected versions and its machines,\nfrom a running server.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	c, err := client()
	if err != nil {
		return err
	}
	var sv struct{ Sites []web.SiteView }
	if err := c.do(ctx, http.MethodGet, "/api/v1/sites", &sv); err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	found := false
	for _, s := range sv.Sites {
		if fs.NArg() > 0 && s.Name != fs.Arg(0) {
			continue
		}
		found = true
		fmt.Fprintf(w, "site %s\tbinding %s\tactive %s\t%d machines, %d outdated\tbootstrapped: %v\n",
			s.Name, s.Binding, versionLabel(s.Active), s.Total, s.Outdated, s.Bootstrapped)
		if s.Pending != nil {
			// The API's words: a bound version the gate refused is
			// rejected; one it has not decided on yet is pending.
			state := "pending"
			if len(s.Problems) > 0 {
				state = "rejected"
			}
			fmt.Fprintf(w, "  %s %s\t%s\n", state, s.Pending, strings.Join(s.Problems, "; "))
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  error\t%s\n", s.Error)
		}
		if s.Repo.Error != "" {
			fmt.Fprintf(w, "  repo\tunreachable: %s\n", s.Repo.Error)
		}
		var mv struct{ Machines []web.MachineView }
		if err := c.do(ctx, http.MethodGet, "/api/v1/machines?site="+url.QueryEscape(s.Name), &mv); err != nil {
			return err
		}
		fmt.Fprintln(w, "  NAME\tROLE\tIP\tSTATE\tVERSION\tOUTDATED\tLAST EVENT")
		for _, m := range mv.Machines {
			last := ""
			if m.LastEvent != nil {
				last = m.LastEvent.Kind + " " + m.LastEvent.At.Local().Format("15:04:05")
			}
			ver := ""
			if m.Version != nil {
				ver = m.Version.String()
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%v\t%s\n", orMAC(m), m.Role, m.IP, m.State, ver, m.Outdated, last)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if fs.NArg() > 0 && !found {
		return exitError{code: 1, msg: fmt.Sprintf("the server serves no site %q", fs.Arg(0))}
	}
	return nil
}

// versionLabel names a version as the server's pages do: "v2
// (abcdef123456)", see web.VersionRef.String.
func versionLabel(v *web.VersionView) string {
	if v == nil {
		return "(none)"
	}
	return v.String()
}

func orMAC(m web.MachineView) string {
	if m.Name != "" {
		return m.Name
	}
	return string(m.MAC)
}

func runMachine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("machine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := clientFlags(fs)
	wait := fs.Bool("wait", false, "wait until the rebuild is done or failed")
	force := fs.Bool("force", false, "rebuild a master even if it breaks the master quorum rule (audited)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: undercloud machine rebuild SITE/NAME [--force] [--wait]

Rebuilds a machine: sets its next boot to the site's active version and
power-cycles it through its BMC (one-time PXE boot), then follows its boot
until it reports back booted on that version. Needs an operator token.

A master is refused when rebuilding it would leave fewer than a majority of
the site's masters up (etcd needs a majority to keep quorum): the server
counts as down every other master that is rebuilding, booting, failed, never
booted, or not running its assigned version, and says which. A site with one
master may always rebuild it; a worker is never refused. --force overrides
the rule; the audit log records the override with the masters that were down.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return exitError{code: 2}
	}
	if fs.NArg() != 2 || fs.Arg(0) != "rebuild" {
		fs.Usage()
		return usageError("want: machine rebuild SITE/NAME")
	}
	site, name, ok := strings.Cut(fs.Arg(1), "/")
	if !ok || site == "" || name == "" {
		return usageError("%q: want SITE/NAME", fs.Arg(1))
	}
	c, err := client()
	if err != nil {
		return err
	}
	var rb web.RebuildView
	path := "/api/v1/machines/" + url.PathEscape(site) + "/" + url.PathEscape(name)
	q := ""
	if *force {
		q = "?force=1"
	}
	if err := c.do(ctx, http.MethodPost, path+"/rebuild"+q, &rb); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuild %d of %s/%s: %s\n", rb.ID, site, name, rb.State)
	if rb.Overrode != "" {
		fmt.Fprintf(stdout, "forced past the master quorum rule: %s\n", rb.Overrode)
	}
	if !*wait {
		return nil
	}
	last := rb.State
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		var d web.MachineDetail
		if err := c.do(ctx, http.MethodGet, path, &d); err != nil {
			return err
		}
		for _, r := range d.Rebuilds {
			if r.ID != rb.ID {
				continue
			}
			if r.State != last {
				fmt.Fprintf(stdout, "rebuild %d of %s/%s: %s %s\n", r.ID, site, name, r.State, r.Reason)
				last = r.State
			}
			switch r.State {
			case inventory.RebuildDone:
				return nil
			case inventory.RebuildFailed, inventory.RebuildCanceled:
				return exitError{code: 1, msg: fmt.Sprintf("rebuild %d %s: %s", r.ID, r.State, r.Reason)}
			}
		}
	}
}

func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := clientFlags(fs)
	wait := fs.Bool("wait", false, "with start or resume: wait until the rollout ends (done, halted or aborted)")
	selector := fs.String("select", "", "with start: roll only the machines matching all of these key=value terms\n(labels from site.yaml, and name and role), e.g. rack=r12,role=worker")
	machines := fs.String("machines", "", "with start: roll only these machines (comma-separated names)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: undercloud rollout start SITE [--select key=value,...] [--machines a,b] [--wait]
       undercloud rollout pause|resume|abort|confirm|status SITE [--wait]

A rollout rebuilds a site's outdated machines under the site's rollout policy:
masters first, one at a time, each waiting for the previous to report booted;
then workers in batches; canary first when the policy says so (confirm ends
its wait), and a soak time between batches when it gives one; it halts by
itself after max_failures failures. pause lets rebuilds under way finish and
starts none; abort cancels what has not started. Changes need an operator
token.

A partial rollout rebuilds only some machines; the others keep the version
they run. --select picks machines by the labels site.yaml gives them
(machines[].labels: {rack: r12}) and by their name and role; every term must
match. --machines names them; with --select too, each must match it. A
machine named but unknown, or a selection with no outdated machine, is an
error that says so. The rollout shows its selection:

  undercloud rollout start lab --select rack=r12,role=worker --wait
  undercloud rollout start lab --machines lab-w1,lab-w2

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return exitError{code: 2}
	}
	actions := map[string]bool{"start": true, "pause": true, "resume": true, "abort": true, "confirm": true, "status": true}
	if fs.NArg() != 2 || !actions[fs.Arg(0)] {
		fs.Usage()
		return usageError("want: rollout start|pause|resume|abort|confirm|status SITE")
	}
	action, site := fs.Arg(0), fs.Arg(1)
	if action != "start" && (*selector != "" || *machines != "") {
		return usageError("--select and --machines go with rollout start only")
	}
	c, err := client()
	if err != nil {
		return err
	}
	path := "/api/v1/sites/" + url.PathEscape(site) + "/rollout"
	var ro web.RolloutView
	switch action {
	case "status":
		err = c.do(ctx, http.MethodGet, path, &ro)
	case "start":
		err = c.send(ctx, http.MethodPost, path, rolloutStartBody(*selector, *machines), &ro)
	default:
		err = c.do(ctx, http.MethodPost, path+"/"+action, &ro)
	}
	if err != nil {
		return err
	}
	printRollout(stdout, ro)
	if !*wait || (action != "start" && action != "resume") {
		return nil
	}
	for ro.State == "planned" || ro.State == "running" || ro.State == "canary-wait" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
		// A fresh value each time: decoding into ro would reuse its
		// Machines array, and prev would change with it.
		var next web.RolloutView
		if err := c.do(ctx, http.MethodGet, path, &next); err != nil {
			return err
		}
		printProgress(stdout, ro, next)
		ro = next
	}
	if ro.State != "done" {
		return exitError{code: 1, msg: fmt.Sprintf("rollout %d %s: %s", ro.ID, ro.State, ro.Reason)}
	}
	return nil
}

// rolloutStartBody is the JSON body of a rollout start: the selection,
// nil (no body) for the whole site.
func rolloutStartBody(selector, machines string) any {
	if selector == "" && machines == "" {
		return nil
	}
	body := struct {
		Select   string   `json:"select,omitempty"`
		Machines []string `json:"machines,omitempty"`
	}{Select: selector}
	for _, m := range strings.Split(machines, ",") {
		if m = strings.TrimSpace(m); m != "" {
			body.Machines = append(body.Machines, m)
		}
	}
	return body
}

func printRollout(w io.Writer, ro web.RolloutView) {
	// The rollout's line stands apart: in the table its reason would widen
	// the machines' first column.
	fmt.Fprintf(w, "%s to %s: %s, %d failure(s)  %s\n", ro.Title(), ro.Target(), ro.State, ro.Failures, ro.Reason)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range ro.Machines {
		fmt.Fprintf(tw, "  batch %d\t%s\t%s\t%s\t%s\n", m.Batch, m.Name, m.Role, m.State, m.Reason)
	}
	tw.Flush()
}

// printProgress prints what changed from prev to cur: the rollout's state
// line when its state, failures or reason changed, and one line per machine
// whose state or reason changed.
func printProgress(w io.Writer, prev, cur web.RolloutView) {
	if cur.State != prev.State || cur.Failures != prev.Failures || cur.Reason != prev.Reason {
		fmt.Fprintf(w, "%s: %s, %d failure(s) %s\n", cur.Title(), cur.State, cur.Failures, cur.Reason)
	}
	was := map[string]web.RolloutMachine{}
	for _, m := range prev.Machines {
		was[m.Name] = m
	}
	for _, m := range cur.Machines {
		if p, ok := was[m.Name]; ok && p.State == m.State && p.Reason == m.Reason {
			continue
		}
		fmt.Fprintf(w, "  %s %s: %s %s\n", time.Now().Format("15:04:05"), m.Name, m.State, m.Reason)
	}
}

// reorder moves flags (with their values) after positional arguments to the
// front, so that `rollout start lab --wait` works as well as
// `rollout --wait start lab`: the flag package stops at the first positional
// argument.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // the flag package reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(flags, pos...)
}
