package ignition

import (
	"github.com/coreos/ignition/v2/config/v3_0"
	"github.com/coreos/ignition/v2/config/v3_1"
	"github.com/coreos/ignition/v2/config/v3_2"
	"github.com/coreos/ignition/v2/config/v3_3"
	"github.com/coreos/ignition/v2/config/v3_4"
	"github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/ignition/v2/config/v3_6"
	"github.com/coreos/vcontext/report"
)

// spec is one Ignition spec version Render can produce. parse is that
// version's ParseCompatibleVersion: it accepts a config of this version or
// any older one, translates it up, and validates it. Everything else the
// renderer does (merge, marshal, validate) works on any version through
// reflection, so parse is the only per-version code.
type spec struct {
	version string
	parse   func(raw []byte) (any, report.Report, error)
}

// specOf adapts one version's typed ParseCompatibleVersion to spec.
func specOf[C any](version string, parse func([]byte) (C, report.Report, error)) spec {
	return spec{version: version, parse: func(raw []byte) (any, report.Report, error) {
		c, r, err := parse(raw)
		return c, r, err
	}}
}

// specs lists the stable spec versions of the vendored Ignition, oldest
// first. Experimental versions are left out: an image that declares one
// could be handed a config its own Ignition no longer accepts.
func specs() []spec {
	return []spec{
		specOf("3.0.0", v3_0.ParseCompatibleVersion),
		specOf("3.1.0", v3_1.ParseCompatibleVersion),
		specOf("3.2.0", v3_2.ParseCompatibleVersion),
		specOf("3.3.0", v3_3.ParseCompatibleVersion),
		specOf("3.4.0", v3_4.ParseCompatibleVersion),
		specOf("3.5.0", v3_5.ParseCompatibleVersion),
		specOf("3.6.0", v3_6.ParseCompatibleVersion),
	}
}

// SupportedSpecs lists the Ignition spec versions Render can produce, oldest
// first (3.0.0 ... 3.6.0).
func SupportedSpecs() []string {
	var vs []string
	for _, s := range specs() {
		vs = append(vs, s.version)
	}
	return vs
}

// specIndex returns the position of version in specs(), or -1.
func specIndex(version string) int {
	for i, s := range specs() {
		if s.version == version {
			return i
		}
	}
	return -1
}
