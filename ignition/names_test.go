package ignition

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
)

// A snippet cannot name a unit, drop-in, file, directory or link that
// Ignition would write outside its directory: the gate refuses the version
// with one line per name, pointing at the snippet's field and line.
func TestGateRefusesEscapingNames(t *testing.T) {
	const unit = `      contents: |
        [Service]
        ExecStart=/bin/true
        [Install]
        WantedBy=multi-user.target
`
	tests := map[string]struct {
		spec  string
		files map[string]string
		want  []string
	}{
		"unit name with ../": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "common.bu": "variant: fcos\nversion: 1.4.0\nsystemd:\n  units:\n" +
				"    - name: ../../etc/cron.d/evil.service\n" + unit},
			want: []string{`sites/lab/snippets/common.bu:systemd.units[0].name: unit name "../../etc/cron.d/evil.service" would escape its directory: a name has no "/", ".." or NUL (line 5)`},
		},
		"unit name with a slash": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "worker.bu": "variant: fcos\nversion: 1.4.0\nsystemd:\n  units:\n" +
				"    - name: ok.service\n" + unit + "    - name: sub/evil.service\n" + unit},
			want: []string{`sites/lab/snippets/worker.bu:systemd.units[1].name: unit name "sub/evil.service" would escape its directory: a name has no "/", ".." or NUL (line 11)`},
		},
		"drop-in name with ../": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "master.bu": `variant: fcos
version: 1.4.0
systemd:
  units:
    - name: kubelet.service
      dropins:
        - name: ../../../../etc/evil.conf
          contents: |
            [Service]
            Environment=X=1
`},
			want: []string{`sites/lab/snippets/master.bu:systemd.units[0].dropins[0].name: drop-in name "../../../../etc/evil.conf" would escape its directory: a name has no "/", ".." or NUL (line 7)`},
		},
		"Ignition JSON unit name with ..": {
			spec: "3.0.0",
			files: map[string]string{snippetDir + "common.ign": `{
  "ignition": {"version": "3.0.0"},
  "systemd": {"units": [
    {"name": "..service", "mask": true}
  ]}
}`},
			want: []string{`sites/lab/snippets/common.ign:systemd.units[0].name: unit name "..service" would escape its directory: a name has no "/", ".." or NUL (line 4)`},
		},
		"hard link to a file outside the root": {
			spec: "3.3.0",
			files: map[string]string{snippetDir + "common.bu": `variant: fcos
version: 1.4.0
storage:
  links:
    - path: /etc/ok
      target: ../../etc/shadow
    - path: /etc/stolen
      hard: true
      target: /../../etc/shadow
`},
			want: []string{`sites/lab/snippets/common.bu:storage.links[1].target: hard link target: path "/../../etc/shadow" is not clean: write "/etc/shadow" (line 9)`},
		},
		// Ignition refuses these itself; the gate says so in its words.
		"file path with ..": {
			spec:  "3.3.0",
			files: map[string]string{snippetDir + "common.bu": "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /etc/../../root/.ssh/authorized_keys\n"},
			want:  []string{`sites/lab/snippets/common.bu:storage.files[0].path: path is not fully simplified (line 5)`},
		},
		"relative directory": {
			spec:  "3.3.0",
			files: map[string]string{snippetDir + "common.bu": "variant: fcos\nversion: 1.4.0\nstorage:\n  directories:\n    - path: var/lib/x\n"},
			want:  []string{`sites/lab/snippets/common.bu:storage.directories[0].path: path not absolute (line 5)`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			gate := sites.Gate{Renderer: Renderer{}}
			ps := gate.Check(context.Background(), load(t, repo(tc.spec, tc.files)), []string{"lab"}, testVersion, nil)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// Names and paths that stay in their directory pass.
func TestConfinedNames(t *testing.T) {
	for _, name := range []string{"kubelet.service", "getty@tty1.service", `dev-disk-by\x2dlabel-data.device`, "10-env.conf", "a.b.service"} {
		if msg := badUnitName(name); msg != "" {
			t.Errorf("badUnitName(%q) = %q, want none", name, msg)
		}
	}
	for _, name := range []string{"../x.service", "a/b.service", "..service", "x..service", "a\x00.service"} {
		if badUnitName(name) == "" {
			t.Errorf("badUnitName(%q) accepts it", name)
		}
	}
	for p, bad := range map[string]bool{"/etc/x": false, "/": false, "/etc/...": false, "etc/x": true, "/etc/../x": true,
		"/etc/x/": true, "/etc//x": true, "/etc/./x": true, "/..": true, "": true, "/etc/\x00": true} {
		if got := badPath(p) != ""; got != bad {
			t.Errorf("badPath(%q) refuses: %t, want %t", p, got, bad)
		}
	}
}
