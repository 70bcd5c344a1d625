package ignition

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/undercloud/undercloud/sites"
	"gopkg.in/yaml.v3"
)

// flags parses the ExecStart of a unit into flag -> value ("" for a
// boolean flag), for both --flag value and --flag=value.
func flags(t *testing.T, unit string) map[string]string {
	t.Helper()
	_, rest, ok := strings.Cut(unit, "\nExecStart=")
	if !ok {
		t.Fatalf("unit has no ExecStart:\n%s", unit)
	}
	line, _, _ := strings.Cut(strings.ReplaceAll(rest, "\\\n", " "), "\n")
	f := map[string]string{}
	tok := strings.Fields(line)
	for i := 1; i < len(tok); i++ {
		name, ok := strings.CutPrefix(tok[i], "--")
		if !ok {
			continue
		}
		if n, v, ok := strings.Cut(name, "="); ok {
			f[n] = v
		} else if i+1 < len(tok) && !strings.HasPrefix(tok[i+1], "--") {
			f[name] = tok[i+1]
			i++
		} else {
			f[name] = ""
		}
	}
	return f
}

// pick returns the entries of got whose keys are in want, so a test names
// only the flags it is about.
func pick(got, want map[string]string) map[string]string {
	p := map[string]string{}
	for k := range want {
		if v, ok := got[k]; ok {
			p[k] = v
		}
	}
	return p
}

func TestRenderMaster(t *testing.T) {
	const cluster = "m2=https://10.99.0.12:2380,m1=https://10.99.0.11:2380,m3=https://10.99.0.13:2380"
	tests := map[string]struct {
		machine      string
		bootstrapped bool
		etcd         map[string]string
		apiServer    []string
	}{
		"before bootstrap the cluster is new": {
			machine: "m1",
			etcd: map[string]string{
				"name":                        "m1",
				"initial-cluster-state":       "new",
				"initial-cluster":             cluster,
				"initial-cluster-token":       "lab-cluster",
				"listen-peer-urls":            "https://10.99.0.11:2380",
				"initial-advertise-peer-urls": "https://10.99.0.11:2380",
				"advertise-client-urls":       "https://10.99.0.11:2379",
			},
			apiServer: []string{"--advertise-address=10.99.0.11", "--etcd-servers=https://10.99.0.12:2379,https://10.99.0.11:2379,https://10.99.0.13:2379"},
		},
		"after bootstrap a re-imaged master joins the existing cluster": {
			machine:      "m3",
			bootstrapped: true,
			etcd: map[string]string{
				"name":                  "m3",
				"initial-cluster-state": "existing",
				"initial-cluster":       cluster,
				"advertise-client-urls": "https://10.99.0.13:2379",
			},
			apiServer: []string{"--advertise-address=10.99.0.13", "--etcd-servers=https://10.99.0.12:2379,https://10.99.0.11:2379,https://10.99.0.13:2379"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := Render(input(t, repo("3.3.0", nil), tc.machine, tc.bootstrapped))
			if err != nil {
				t.Fatal(err)
			}
			r := decode(t, out)
			got := flags(t, r.unit(t, "etcd-member.service"))
			if diff := cmp.Diff(tc.etcd, pick(got, tc.etcd)); diff != "" {
				t.Errorf("etcd flags (-want +got):\n%s", diff)
			}
			kubelet := flags(t, r.unit(t, "kubelet.service"))
			wantKubelet := map[string]string{
				"node-labels":          RoleLabel + "=master",
				"register-with-taints": ControlPlaneTaint,
				"pod-manifest-path":    "/etc/kubernetes/manifests",
				"hostname-override":    tc.machine,
			}
			if diff := cmp.Diff(wantKubelet, pick(kubelet, wantKubelet)); diff != "" {
				t.Errorf("kubelet flags (-want +got):\n%s", diff)
			}
			manifest, _ := r.file(t, "/etc/kubernetes/manifests/kube-apiserver.yaml")
			var p pod
			if err := yaml.Unmarshal([]byte(manifest), &p); err != nil {
				t.Fatalf("kube-apiserver manifest: %v", err)
			}
			cmd := strings.Join(p.Spec.Containers[0].Command, " ")
			for _, want := range tc.apiServer {
				if !strings.Contains(cmd, want) {
					t.Errorf("kube-apiserver command lacks %s: %s", want, cmd)
				}
			}
			for _, f := range []string{"kube-controller-manager", "kube-scheduler"} {
				r.file(t, "/etc/kubernetes/manifests/"+f+".yaml")
			}
			if r.hasFile(BootstrapKubeconfigPath) {
				t.Errorf("a master got the worker's %s", BootstrapKubeconfigPath)
			}
		})
	}
}

func TestRenderWorker(t *testing.T) {
	tests := map[string]struct {
		machine string
		network string
	}{
		"on the site subnet": {
			machine: "w1",
			network: "[connection]\nid=undercloud\ntype=ethernet\nautoconnect=true\n\n" +
				"[ethernet]\nmac-address=52:54:00:00:01:01\n\n" +
				"[ipv4]\nmethod=manual\naddress1=10.99.0.21/24\ngateway=10.99.0.1\ndns=10.99.0.2;10.99.0.3;\ndns-search=lab.example;\nmay-fail=false\n\n" +
				"[ipv6]\nmethod=disabled\n",
		},
		"behind a relay, routed by the relay's gateway": {
			machine: "w2",
			network: "[connection]\nid=undercloud\ntype=ethernet\nautoconnect=true\n\n" +
				"[ethernet]\nmac-address=52:54:00:00:01:02\n\n" +
				"[ipv4]\nmethod=manual\naddress1=10.99.1.22/24\ngateway=10.99.1.1\ndns=10.99.0.2;10.99.0.3;\ndns-search=lab.example;\nmay-fail=false\n\n" +
				"[ipv6]\nmethod=disabled\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := Render(input(t, repo("3.3.0", nil), tc.machine, false))
			if err != nil {
				t.Fatal(err)
			}
			r := decode(t, out)
			kc, mode := r.file(t, BootstrapKubeconfigPath)
			var k struct {
				Clusters []struct {
					Cluster struct{ Server string }
				}
			}
			if err := yaml.Unmarshal([]byte(kc), &k); err != nil || len(k.Clusters) != 1 {
				t.Fatalf("bootstrap kubeconfig does not parse (%v):\n%s", err, kc)
			}
			if diff := cmp.Diff("https://10.99.0.10:6443", k.Clusters[0].Cluster.Server); diff != "" {
				t.Errorf("bootstrap kubeconfig server (-want +got):\n%s", diff)
			}
			if mode != 0o600 {
				t.Errorf("bootstrap kubeconfig mode %o, want 600", mode)
			}
			kubelet := flags(t, r.unit(t, "kubelet.service"))
			want := map[string]string{"bootstrap-kubeconfig": BootstrapKubeconfigPath, "node-labels": RoleLabel + "=worker", "node-ip": ""}
			want["node-ip"] = map[string]string{"w1": "10.99.0.21", "w2": "10.99.1.22"}[tc.machine]
			if diff := cmp.Diff(want, pick(kubelet, want)); diff != "" {
				t.Errorf("kubelet flags (-want +got):\n%s", diff)
			}
			if r.hasUnit("etcd-member.service") {
				t.Error("a worker got an etcd member")
			}
			nm, mode := r.file(t, NetworkPath)
			if diff := cmp.Diff(tc.network, nm); diff != "" {
				t.Errorf("network keyfile (-want +got):\n%s", diff)
			}
			if mode != 0o600 {
				t.Errorf("network keyfile mode %o, want 600 (NetworkManager ignores readable keyfiles)", mode)
			}
		})
	}
}

func TestRenderIdentity(t *testing.T) {
	tests := map[string]struct {
		machine string
		version string
	}{
		"master": {
			machine: "m2",
			version: "site=lab\nmachine=m2\nrole=master\nversion=0123456789abcdef0123456789abcdef01234567\nlabel=v7\n",
		},
		"worker": {
			machine: "w1",
			version: "site=lab\nmachine=w1\nrole=worker\nversion=0123456789abcdef0123456789abcdef01234567\nlabel=v7\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := input(t, repo("3.3.0", nil), tc.machine, true)
			out, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			r := decode(t, out)
			host, _ := r.file(t, HostnamePath)
			if host != tc.machine+"\n" {
				t.Errorf("hostname %q", host)
			}
			v, mode := r.file(t, VersionPath)
			if diff := cmp.Diff(tc.version, v); diff != "" || mode != 0o644 {
				t.Errorf("version file, mode %o (-want +got):\n%s", mode, diff)
			}
			var users []string
			for _, u := range r.Passwd.Users {
				users = append(users, u.Name+" "+strings.Join(u.SSHAuthorizedKeys, ","))
			}
			if diff := cmp.Diff([]string{"core " + testKey}, users); diff != "" {
				t.Errorf("users (-want +got):\n%s", diff)
			}
			for _, u := range []string{BootedUnit, HeartbeatUnit, HeartbeatTimer} {
				if !r.hasUnit(u) {
					t.Errorf("no %s", u)
				}
			}
			if r.hasFile(ReportEnvPath) {
				t.Errorf("Render wrote the per-boot %s", ReportEnvPath)
			}
		})
	}
}

func TestRenderRefusesBadInput(t *testing.T) {
	in := input(t, repo("3.3.0", nil), "w1", false)
	good := PerBoot{BootID: "b1", BootedURL: "http://10.99.0.1/booted?token=a", HeartbeatURL: "http://10.99.0.1/heartbeat?token=b"}
	for name, edit := range map[string]func(*PerBoot){
		"relative":      func(pb *PerBoot) { pb.BootedURL = "/booted" },
		"not http":      func(pb *PerBoot) { pb.HeartbeatURL = "ftp://10.99.0.1/heartbeat" },
		"newline":       func(pb *PerBoot) { pb.BootedURL = "http://10.99.0.1/booted\nExecStartPre=/bin/sh" },
		"quote":         func(pb *PerBoot) { pb.BootedURL = "http://10.99.0.1/booted'x" },
		"space":         func(pb *PerBoot) { pb.HeartbeatURL = "http://10.99.0.1/heartbeat x" },
		"no boot id":    func(pb *PerBoot) { pb.BootID = "" },
		"no booted URL": func(pb *PerBoot) { pb.BootedURL = "" },
	} {
		t.Run(name, func(t *testing.T) {
			pb := good
			edit(&pb)
			if _, err := Served(in, pb); err == nil {
				t.Errorf("per-boot values %+v accepted", pb)
			}
		})
	}
	if _, err := Served(in, good); err != nil {
		t.Fatalf("good per-boot values refused: %v", err)
	}
	t.Run("machine outside every subnet", func(t *testing.T) {
		in := input(t, repo("3.3.0", nil), "w1", false)
		m := *in.Machine
		m.IP = netip.MustParseAddr("192.0.2.7")
		in.Machine = &m
		_, err := Render(in)
		if err == nil || !strings.Contains(err.Error(), "192.0.2.7") {
			t.Errorf("got %v, want an error naming the address", err)
		}
	})
	t.Run("no release", func(t *testing.T) {
		if _, err := Render(Input{}); err == nil {
			t.Error("empty input accepted")
		}
	})
}

// Every supported spec version comes out as exactly that version, for both
// roles, with snippets of the oldest spec translated up.
func TestRenderEverySpec(t *testing.T) {
	snippets := map[string]string{
		"sites/lab/snippets/common.ign": `{"ignition": {"version": "3.0.0"}, "storage": {"files": [{"path": "/etc/motd", "overwrite": true, "contents": {"source": "data:,hello"}}]}}`,
		"sites/lab/snippets/worker.bu":  "variant: fcos\nversion: 1.0.0\nstorage:\n  files:\n    - path: /etc/worker\n      contents:\n        inline: w\n",
	}
	for _, spec := range SupportedSpecs() {
		for _, machine := range []string{"m1", "w1"} {
			t.Run(spec+"/"+machine, func(t *testing.T) {
				out, err := Render(input(t, repo(spec, snippets), machine, false))
				if err != nil {
					t.Fatal(err)
				}
				r := decode(t, out)
				if r.Ignition.Version != spec {
					t.Errorf("output declares %q, image wants %q", r.Ignition.Version, spec)
				}
				if motd, _ := r.file(t, "/etc/motd"); motd != "hello" {
					t.Errorf("common snippet file: %q", motd)
				}
				if got := r.hasFile("/etc/worker"); got != (machine == "w1") {
					t.Errorf("worker snippet file present: %v", got)
				}
			})
		}
	}
}

func TestRenderDeterministic(t *testing.T) {
	files := repo("3.4.0", map[string]string{
		"sites/lab/snippets/common.bu": "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/a\n      contents:\n        inline: a\n    - path: /etc/b\n      contents:\n        inline: b\n",
	})
	first, err := Render(input(t, files, "m1", false))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		// A fresh load each time: map iteration order differs between loads.
		again, err := Render(input(t, files, "m1", false))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("two renders of the same input differ:\n%s", cmp.Diff(string(first), string(again)))
		}
	}
}

func TestSupportedSpecs(t *testing.T) {
	want := []string{"3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0"}
	if diff := cmp.Diff(want, SupportedSpecs()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// problems unwraps a sites.Problems error, failing on any other error.
func problems(t *testing.T, err error) sites.Problems {
	t.Helper()
	var ps sites.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v (%T), want sites.Problems", err, err)
	}
	return ps
}
