package ignition

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

const snippetDir = "sites/lab/snippets/"

// Common and role snippets are merged over the generated config, the role's
// last: on the same path the role wins over common, and both win over the
// generated base.
func TestSnippetsMerged(t *testing.T) {
	files := repo("3.3.0", map[string]string{
		snippetDir + "common.bu": `variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/motd
      mode: 0644
      contents:
        inline: welcome
    - path: /etc/role-note
      contents:
        inline: from common
`,
		snippetDir + "master.ign": `{
  "ignition": {"version": "3.2.0"},
  "storage": {"files": [
    {"path": "/etc/role-note", "overwrite": true, "contents": {"source": "data:,from%20master"}},
    {"path": "/etc/hostname", "overwrite": true, "contents": {"source": "data:,renamed"}}
  ]}
}`,
		snippetDir + "worker.bu": `variant: fcos
version: 1.3.0
systemd:
  units:
    - name: worker-extra.service
      enabled: true
      contents: |
        [Service]
        ExecStart=/bin/true
        [Install]
        WantedBy=multi-user.target
`,
	})
	tests := map[string]struct {
		machine string
		want    map[string]string // path -> contents
		unit    bool              // worker-extra.service present
	}{
		"master: role overrides common and the base": {
			machine: "m1",
			want:    map[string]string{"/etc/motd": "welcome", "/etc/role-note": "from master", HostnamePath: "renamed"},
		},
		"worker: common only, plus its own unit": {
			machine: "w1",
			want:    map[string]string{"/etc/motd": "welcome", "/etc/role-note": "from common", HostnamePath: "w1\n"},
			unit:    true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := Render(input(t, files, tc.machine, false))
			if err != nil {
				t.Fatal(err)
			}
			r := decode(t, out)
			got := map[string]string{}
			for path := range tc.want {
				got[path], _ = r.file(t, path)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			n := 0
			for _, f := range r.Storage.Files {
				if f.Path == "/etc/role-note" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("/etc/role-note appears %d times, want once (merged, not appended)", n)
			}
			if got := r.hasUnit("worker-extra.service"); got != tc.unit {
				t.Errorf("worker-extra.service present: %v, want %v", got, tc.unit)
			}
			r.unit(t, "kubelet.service") // the base survives the merge
		})
	}
}

// Every problem a snippet or the image can cause names the file, the field
// and the line, so the author of a site repo change can fix it.
func TestSnippetProblems(t *testing.T) {
	tests := map[string]struct {
		spec    string
		files   map[string]string
		machine string
		want    sites.Problems
	}{
		"Butane with a typo in a key (a warning is a problem, not called one)": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "master.bu": `variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/x
      contnts:
        inline: hi
`},
			machine: "m1",
			want:    sites.Problems{{File: snippetDir + "master.bu", Field: "storage.files[0].contnts", Line: 6, Message: "unused key contnts"}},
		},
		"Butane with an invalid value": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "common.bu": `variant: fcos
version: 1.4.0
storage:
  files:
    - path: etc/x
`},
			machine: "w1",
			want:    sites.Problems{{File: snippetDir + "common.bu", Field: "storage.files[0].path", Line: 5, Message: "path not absolute"}},
		},
		"Butane with values of the wrong type: each names its field path": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "master.bu": `variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/x
      mode: abc
      overwrite: 3
    - path: [1]
      contents:
        source: [2]
      user:
        id: not a number at all
`},
			machine: "m1",
			want: sites.Problems{
				{File: snippetDir + "master.bu", Field: "storage.files[0].mode", Line: 6, Message: "Butane: cannot unmarshal !!str `abc` into int"},
				{File: snippetDir + "master.bu", Field: "storage.files[0].overwrite", Line: 7, Message: "Butane: cannot unmarshal !!int `3` into bool"},
				{File: snippetDir + "master.bu", Field: "storage.files[1].path", Line: 8, Message: "Butane: cannot unmarshal !!seq into string"},
				{File: snippetDir + "master.bu", Field: "storage.files[1].contents.source", Line: 10, Message: "Butane: cannot unmarshal !!seq into string"},
				{File: snippetDir + "master.bu", Field: "storage.files[1].user.id", Line: 12, Message: "Butane: cannot unmarshal !!str `not a n...` into int"},
			},
		},
		"Butane that is not YAML": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "worker.bu": `variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/x
     contents:
`},
			machine: "w1",
			want:    sites.Problems{{File: snippetDir + "worker.bu", Line: 4, Message: "not valid YAML: line 4: did not find expected '-' indicator"}},
		},
		"Butane reading server files": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "common.bu": `variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/x
      contents:
        local: /etc/shadow
`},
			machine: "m1",
			want: sites.Problems{{File: snippetDir + "common.bu", Field: "storage.files[0].contents.local", Line: 7,
				Message: "local file paths are relative to a files directory that must be specified with -d/--files-dir"}},
		},
		"Ignition JSON with a syntax error": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "common.ign": `{
  "ignition": {"version": "3.3.0"},
  "storage": {"files": [{"path": "/x",]}
}`},
			machine: "m1",
			want:    sites.Problems{{File: snippetDir + "common.ign", Line: 3, Message: "invalid character ']' looking for beginning of object key string"}},
		},
		"Ignition snippet newer than the image": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "common.ign": `{
  "ignition": {"version": "3.4.0"}
}`},
			machine: "w1",
			want:    sites.Problems{{File: snippetDir + "common.ign", Field: "ignition.version", Line: 2, Message: "snippet spec 3.4.0 is newer than image testnode's 3.3.0"}},
		},
		"Butane snippet whose output is newer than the image": {
			spec:    "3.3.0",
			files:   map[string]string{snippetDir + "master.bu": "variant: fcos\nversion: 1.5.0\n"},
			machine: "m1",
			want: sites.Problems{{File: snippetDir + "master.bu", Field: "version", Line: 2,
				Message: "snippet spec 3.4.0 (from Butane fcos 1.5.0) is newer than image testnode's 3.3.0"}},
		},
		"Butane experimental version (its Ignition spec is experimental too)": {
			spec:    "3.6.0",
			files:   map[string]string{snippetDir + "master.bu": "variant: fcos\nversion: 1.8.0-experimental\n"},
			machine: "m1",
			want: sites.Problems{{File: snippetDir + "master.bu", Field: "version", Line: 2,
				Message: "snippet spec 3.7.0-experimental (from Butane fcos 1.8.0-experimental) is not a supported Ignition spec (supported: 3.0.0, 3.1.0, 3.2.0, 3.3.0, 3.4.0, 3.5.0, 3.6.0)"}},
		},
		"Butane version that does not exist": {
			spec:    "3.6.0",
			files:   map[string]string{snippetDir + "common.bu": "# site-wide\nvariant: fcos\nversion: 1.9.0\n"},
			machine: "w1",
			want: sites.Problems{{File: snippetDir + "common.bu", Field: "version", Line: 3,
				Message: "Butane variant fcos version 1.9.0 is unknown to this server's Butane"}},
		},
		"Butane without a variant": {
			spec:    "3.6.0",
			files:   map[string]string{snippetDir + "common.bu": "version: 1.6.0\n"},
			machine: "w1",
			want: sites.Problems{{File: snippetDir + "common.bu", Line: 1,
				Message: "a Butane snippet starts with variant and version (e.g. variant: fcos, version: 1.6.0)"}},
		},
		"unsupported image spec": {
			spec:    "3.7.0",
			machine: "w1",
			want: sites.Problems{{File: "images/testnode.yaml", Field: "ignition", Line: 1,
				Message: `Ignition spec "3.7.0" is not supported (supported: 3.0.0, 3.1.0, 3.2.0, 3.3.0, 3.4.0, 3.5.0, 3.6.0)`}},
		},
		"a snippet that breaks a generated unit once merged": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "master.bu": `variant: fcos
version: 1.4.0
systemd:
  units:
    - name: etcd-member.service
      contents: |
        [Service]
        ExecStart=/bin/true
`},
			machine: "m1",
			want: sites.Problems{{File: snippetDir + "master.bu", Field: "systemd.units[0].contents", Line: 6,
				Message: `unit "etcd-member.service" is enabled, but has no install section so enable does nothing (once merged over the generated config)`}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Render(input(t, repo(tc.spec, tc.files), tc.machine, false))
			if diff := cmp.Diff(tc.want, problems(t, err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The line an author reads for a mistyped Butane value names the field and
// its line, not only the Go type the decoder wanted.
func TestButaneTypeErrorLine(t *testing.T) {
	files := repo("3.3.0", map[string]string{snippetDir + "common.bu": "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /etc/x\n      mode: rw\n"})
	_, err := Render(input(t, files, "w1", false))
	want := "sites/lab/snippets/common.bu:storage.files[0].mode: Butane: cannot unmarshal !!str `rw` into int (line 6)"
	if ps := problems(t, err); len(ps) != 1 || ps[0].String() != want {
		t.Errorf("got %v, want %q", ps, want)
	}
}

// The gate reports through Renderer what Render reports, and checks the
// snippets of a role no machine has.
func TestGateUsesRenderer(t *testing.T) {
	files := repo("3.3.0", map[string]string{snippetDir + "worker.bu": "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: relative\n"})
	// A site without workers: the broken worker.bu must still be refused.
	files["sites/lab/site.yaml"] = []byte(strings.Split(testSite, "  - {name: w1")[0])
	cfg := load(t, files)
	gate := sites.Gate{Renderer: Renderer{}}
	got := gate.Check(context.Background(), cfg, []string{"lab"}, testVersion, nil)
	want := sites.Problems{{File: snippetDir + "worker.bu", Field: "storage.files[0].path", Line: 5, Message: "path not absolute"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	files = repo("3.3.0", nil)
	if got := gate.Check(context.Background(), load(t, files), []string{"lab"}, testVersion, nil); len(got) > 0 {
		t.Errorf("a good version is refused:\n%v", got)
	}
}
