package sites

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Files is the content of a site repo at one commit, keyed by slash path.
// Site repos hold YAML and small snippets, so a version is read whole into
// memory once and everything after that is pure.
type Files map[string][]byte

// Config is a site repo at one commit: its image catalog and its sites.
type Config struct {
	Images map[string]*Image
	Sites  map[string]*Site
}

// SiteNames returns the names of the sites in c, sorted.
func (c *Config) SiteNames() []string {
	names := make([]string, 0, len(c.Sites))
	for n := range c.Sites {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// The repo layout.
const (
	BindingsFile = "bindings.yaml"
	imagesDir    = "images"
	sitesDir     = "sites"
	siteFile     = "site.yaml"
	snippetsDir  = "snippets"
)

// nameRE is what site, image and machine names may look like: they become
// DNS labels, file names and URL path segments.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// DefaultRootfsArg is the kernel argument that carries the rootfs URL of an
// image that names none (Image.RootfsArg).
const DefaultRootfsArg = "coreos.live.rootfs_url"

// Load parses every site and image in files. It reports problems of form
// (YAML syntax, unknown fields, types, required fields, file names); the
// semantic checks are Check's.
func Load(files Files) (*Config, Problems) {
	c := &Config{Images: map[string]*Image{}, Sites: map[string]*Site{}}
	var ps Problems
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		dir, base := path.Split(name)
		switch {
		case dir == imagesDir+"/" && strings.HasSuffix(base, ".yaml"):
			im, p := loadImage(name, files[name])
			ps = append(ps, p...)
			c.Images[im.Name] = im
		case strings.HasPrefix(name, sitesDir+"/") && base == siteFile && strings.Count(name, "/") == 2:
			s, p := loadSite(name, files)
			ps = append(ps, p...)
			c.Sites[s.Name] = s
		}
	}
	return c, ps
}

func loadImage(file string, data []byte) (*Image, Problems) {
	im := &Image{Name: strings.TrimSuffix(path.Base(file), ".yaml"), File: file}
	lines, ps := decodeFile(file, data, im)
	im.lines = lines
	if !nameRE.MatchString(im.Name) {
		ps = append(ps, problemf(file, "", 0, "image name %q (from the file name) must be lower-case letters, digits and dashes", im.Name))
	}
	if im.Arch == "" {
		im.Arch = "x86_64"
	}
	if im.IgnitionArg == "" {
		im.IgnitionArg = "ignition.config.url"
	}
	if im.RootfsArg == "" {
		im.RootfsArg = DefaultRootfsArg
	}
	return im, ps
}

func loadSite(file string, files Files) (*Site, Problems) {
	dir := path.Dir(file)
	s := &Site{Name: path.Base(dir), File: file, Snippets: map[string]Snippet{}}
	lines, ps := decodeFile(file, files[file], s)
	s.lines = lines
	if !nameRE.MatchString(s.Name) {
		ps = append(ps, problemf(file, "", 0, "site name %q (from the directory name) must be lower-case letters, digits and dashes", s.Name))
	}
	if s.Network.DHCP.Mode == "" {
		s.Network.DHCP.Mode = DHCPAuthoritative
	}
	s.Network.DHCP.LeaseTime = s.Network.DHCP.LeaseTime.or(3600e9)
	checkHeartbeat(s, &ps)
	s.Heartbeat.Interval = s.Heartbeat.Interval.or(DefaultHeartbeat)
	prefix := dir + "/" + snippetsDir + "/"
	for name, data := range files {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		base := strings.TrimPrefix(name, prefix)
		scope, ext, _ := strings.Cut(base, ".")
		kind := map[string]SnippetKind{"bu": SnippetButane, "ign": SnippetIgnition}[ext]
		switch {
		case kind == "" || !validScope(scope):
			ps = append(ps, problemf(name, "", 0, "unexpected snippet file: want one of %s with extension .bu (Butane) or .ign (Ignition JSON)", strings.Join(SnippetScopes, ", ")))
		case s.Snippets[scope].File != "":
			ps = append(ps, problemf(name, "", 0, "a %s snippet is already given by %s", scope, s.Snippets[scope].File))
		default:
			s.Snippets[scope] = Snippet{File: name, Kind: kind, Data: data}
		}
	}
	return s, ps
}

func validScope(s string) bool {
	for _, v := range SnippetScopes {
		if s == v {
			return true
		}
	}
	return false
}

// ParseBindings reads bindings.yaml: a mapping of site name to ref (a tag, a
// commit hash or a branch).
func ParseBindings(data []byte) (map[string]string, Problems) {
	b := map[string]string{}
	_, ps := decodeFile(BindingsFile, data, &b)
	for site, ref := range b {
		if !nameRE.MatchString(site) {
			ps = append(ps, problemf(BindingsFile, site, 0, "site name %q must be lower-case letters, digits and dashes", site))
		}
		if strings.TrimSpace(ref) == "" {
			ps = append(ps, problemf(BindingsFile, site, 0, "empty ref: give a tag, a commit or a branch"))
		}
	}
	ps.Sort()
	return b, ps
}

// Release builds the release of one site from a loaded config. It does not
// check anything; call it only on a config the gate accepted.
func (c *Config) Release(site string, v Version) (*Release, error) {
	s, ok := c.Sites[site]
	if !ok {
		return nil, fmt.Errorf("site %s: no %s/%s/%s at %s", site, sitesDir, site, siteFile, v.Short())
	}
	im, ok := c.Images[s.Image]
	if !ok {
		return nil, fmt.Errorf("site %s: image %q is not in the catalog at %s", site, s.Image, v.Short())
	}
	rel := &Release{Site: s, Image: im, Version: v}
	if s.DiscoveryImage != "" {
		if rel.Discovery, ok = c.Images[s.DiscoveryImage]; !ok {
			return nil, fmt.Errorf("site %s: discovery image %q is not in the catalog at %s", site, s.DiscoveryImage, v.Short())
		}
	}
	return rel, nil
}
