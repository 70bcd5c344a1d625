package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// siteName is the one site of the storm's repo.
const siteName = "storm"

// rackSize is how many machines share a rack label (rack=r0, r1, …).
const rackSize = 40

// artifact is one boot file of the storm's image.
type artifact struct {
	Name, Path, SHA256 string // Path inside the artifact root
	Size               int64
}

// siteSpec is what the generated site repo declares.
type siteSpec struct {
	Machines  []machineSpec
	Racks     map[string]string // machine name -> rack label
	Artifacts []artifact        // kernel, initrd[, rootfs]
	Mirrors   []mirrorSpec      // sites' mirrors: field, empty without the mirror case
}

// mirrorSpec is one entry of the site's mirrors: list.
type mirrorSpec struct{ URL, Select string }

// machines returns n machines in the relay subnet: names n00001…, MACs
// 52:54:01:…, addresses from 10.64.1.10, racks of rackSize.
func machines(n int) ([]machineSpec, map[string]string) {
	ms := make([]machineSpec, n)
	racks := make(map[string]string, n)
	for i := range ms {
		ip := netip.AddrFrom4([4]byte{10, 64, byte(1 + i/200), byte(10 + i%200)})
		ms[i] = machineSpec{
			Name: fmt.Sprintf("n%05d", i+1),
			MAC:  fmt.Sprintf("52:54:01:%02x:%02x:%02x", (i+1)>>16&0xff, (i+1)>>8&0xff, (i+1)&0xff),
			IP:   ip.String(),
			UUID: fmt.Sprintf("5354524d-0000-4000-8000-%012x", i+1),
		}
		racks[ms[i].Name] = fmt.Sprintf("r%d", i/rackSize)
	}
	return ms, racks
}

// writeArtifacts writes random files of the given sizes (MiB; rootfs 0
// means none) into dir and returns them with their digests.
func writeArtifacts(dir string, kernelMiB, initrdMiB, rootfsMiB int) ([]artifact, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sizes := []struct {
		name string
		mib  int
	}{{"kernel", kernelMiB}, {"initrd", initrdMiB}, {"rootfs", rootfsMiB}}
	var as []artifact
	for _, s := range sizes {
		if s.mib <= 0 {
			continue
		}
		path := filepath.Join(dir, s.name)
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		n, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, int64(s.mib)<<20)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		as = append(as, artifact{Name: s.name, Path: s.name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n})
	}
	return as, nil
}

// siteYAML is the storm site: the server's own subnet on s0, the machines
// behind the relay, three masters (one when fewer than 10 machines), the
// rest workers, each with its rack label.
func siteYAML(spec siteSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, `network:
  interface: s0
  subnet: 10.0.0.0/24
  dhcp:
    lease_time: 1h
  relays:
    - subnet: %s
      gateway: %s
image: storm
cluster: {name: storm, api_vip: 10.0.0.10}
`, relaySubnet, relayAddr)
	if len(spec.Mirrors) > 0 {
		b.WriteString("mirrors:\n")
		for _, m := range spec.Mirrors {
			fmt.Fprintf(&b, "  - {url: %q", m.URL)
			if m.Select != "" {
				fmt.Fprintf(&b, ", select: %q", m.Select)
			}
			b.WriteString("}\n")
		}
	}
	masters := 3
	if len(spec.Machines) < 10 {
		masters = 1
	}
	b.WriteString("machines:\n")
	for i, m := range spec.Machines {
		role := "worker"
		if i < masters {
			role = "master"
		}
		fmt.Fprintf(&b, "  - {name: %s, mac: %q, role: %s, ip: %s, labels: {rack: %s}}\n", m.Name, m.MAC, role, m.IP, spec.Racks[m.Name])
	}
	return b.String()
}

func imageYAML(as []artifact) string {
	var b strings.Builder
	b.WriteString("ignition: 3.3.0\nmode: live\narch: x86_64\nkernel_args: [console=ttyS0, quiet]\nartifacts:\n")
	for _, a := range as {
		fmt.Fprintf(&b, "  %s: {path: %s, sha256: %s, size: %d}\n", a.Name, a.Path, a.SHA256, a.Size)
	}
	return b.String()
}

// writeSiteRepo makes a git repo in dir with the storm site bound on main.
func writeSiteRepo(ctx context.Context, dir string, spec siteSpec) error {
	files := map[string]string{
		"bindings.yaml":         siteName + ": main\n",
		"images/storm.yaml":     imageYAML(spec.Artifacts),
		"sites/storm/site.yaml": siteYAML(spec),
		"sites/storm/snippets/common.bu": "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n" +
			"    - path: /etc/motd\n      contents: {inline: \"storm\\n\"}\n",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return err
		}
	}
	git := func(args ...string) []string {
		return append([]string{"git", "-C", dir, "-c", "user.name=storm", "-c", "user.email=storm@invalid"}, args...)
	}
	return runAll(ctx, [][]string{git("init", "-q", "-b", "main"), git("add", "-A"), git("commit", "-qm", "storm")})
}
