package ignition

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/undercloud/undercloud/sites"
)

// confined is the part of a config whose names and paths Ignition joins to
// a directory on the node: units and drop-ins under /etc/systemd/system,
// files, directories, links and hard-link targets under the new root.
// Decoded from the config's JSON, it reads every spec version alike.
type confined struct {
	Storage struct {
		Files, Directories []struct{ Path string }
		Links              []struct {
			Path   string
			Target *string
			Hard   *bool
		}
	}
	Systemd struct {
		Units []struct {
			Name    string
			Dropins []struct{ Name string }
		}
	}
}

// escapes reports every unit or drop-in name and every path of a parsed
// snippet that would write outside its directory. Ignition checks that
// paths are absolute and clean (in the specs it knows of today), but
// takes any unit name that ends in a unit type, "../../etc/x.service"
// included, and joins it to /etc/systemd/system. The gate checks all of
// them itself, so no spec version's leniency reaches a node.
func escapes(l layer) sites.Problems {
	raw, err := json.Marshal(l.cfg)
	if err != nil {
		return sites.Problems{{File: l.snippet.File, Message: "cannot read the parsed snippet back: " + err.Error()}}
	}
	var c confined
	if err := json.Unmarshal(raw, &c); err != nil {
		return sites.Problems{{File: l.snippet.File, Message: "cannot read the parsed snippet back: " + err.Error()}}
	}
	var ps sites.Problems
	add := func(msg string, p ...any) {
		ps = append(ps, sites.Problem{File: l.snippet.File, Field: l.field(p), Line: l.line(p), Message: msg})
	}
	for i, u := range c.Systemd.Units {
		if msg := badUnitName(u.Name); msg != "" {
			add("unit "+msg, "systemd", "units", i, "name")
		}
		for j, d := range u.Dropins {
			if msg := badUnitName(d.Name); msg != "" {
				add("drop-in "+msg, "systemd", "units", i, "dropins", j, "name")
			}
		}
	}
	for i, f := range c.Storage.Files {
		if msg := badPath(f.Path); msg != "" {
			add(msg, "storage", "files", i, "path")
		}
	}
	for i, d := range c.Storage.Directories {
		if msg := badPath(d.Path); msg != "" {
			add(msg, "storage", "directories", i, "path")
		}
	}
	for i, k := range c.Storage.Links {
		if msg := badPath(k.Path); msg != "" {
			add(msg, "storage", "links", i, "path")
		}
		// A hard link's target is a file of the new root, joined to it like
		// a path; a symbolic link's is the link's text, resolved on the node.
		if k.Hard != nil && *k.Hard && k.Target != nil {
			if msg := badPath(*k.Target); msg != "" {
				add("hard link target: "+msg, "storage", "links", i, "target")
			}
		}
	}
	return ps
}

// badUnitName says why a unit or drop-in name would leave its directory,
// "" if it would not.
func badUnitName(name string) string {
	if strings.Contains(name, "/") || strings.Contains(name, "..") || strings.ContainsRune(name, 0) {
		return fmt.Sprintf(`name %q would escape its directory: a name has no "/", ".." or NUL`, name)
	}
	return ""
}

// badPath says why a path of the new root would leave it or is not the one
// it appears to be, "" if it is absolute and clean (a clean absolute path
// holds no "..": path.Clean removes them all).
func badPath(p string) string {
	switch {
	case !path.IsAbs(p):
		return fmt.Sprintf("path %q is not absolute", p)
	case strings.ContainsRune(p, 0):
		return fmt.Sprintf("path %q holds a NUL", p)
	case path.Clean(p) != p:
		return fmt.Sprintf("path %q is not clean: write %q", p, path.Clean(p))
	}
	return ""
}
