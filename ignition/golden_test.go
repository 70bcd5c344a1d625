package ignition

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.ign from the current renderer")

// goldenInputs are the configs kept under testdata, as served: a reviewer
// sees in a diff exactly what a change does to what machines get.
func goldenInputs(t *testing.T) map[string]Input {
	files := repo("3.3.0", map[string]string{
		snippetDir + "common.bu": "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contents:\n        inline: managed by undercloud\n",
	})
	return map[string]Input{"master.ign": input(t, files, "m1", false), "worker.ign": input(t, files, "w2", true)}
}

// goldenPerBoot are the per-boot values of the golden configs.
func goldenPerBoot(in Input) PerBoot {
	q := "?mac=" + string(in.Machine.MAC) + "&version=0123456789abcdef0123456789abcdef01234567&token="
	return PerBoot{BootID: "0011223344556677",
		BootedURL: "http://10.99.0.1:8080/booted" + q + "T0K3N", HeartbeatURL: "http://10.99.0.1:8080/heartbeat" + q + "H34RT"}
}

func TestGolden(t *testing.T) {
	for name, in := range goldenInputs(t) {
		t.Run(name, func(t *testing.T) {
			got, err := Served(in, goldenPerBoot(in))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./ignition -update to create it)", err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("%s differs (-want +got; go test ./ignition -update accepts the change):\n%s", path, cmp.Diff(string(want), string(got)))
			}
		})
	}
}
