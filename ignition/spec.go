package ignition

import (
	"github.com/coreos/ignition/v2/config/v3_0"
	types30 "github.com/coreos/ignition/v2/config/v3_0/types"
	"github.com/coreos/ignition/v2/config/v3_1"
	tr31 "github.com/coreos/ignition/v2/config/v3_1/translate"
	types31 "github.com/coreos/ignition/v2/config/v3_1/types"
	"github.com/coreos/ignition/v2/config/v3_2"
	tr32 "github.com/coreos/ignition/v2/config/v3_2/translate"
	types32 "github.com/coreos/ignition/v2/config/v3_2/types"
	"github.com/coreos/ignition/v2/config/v3_3"
	tr33 "github.com/coreos/ignition/v2/config/v3_3/translate"
	types33 "github.com/coreos/ignition/v2/config/v3_3/types"
	"github.com/coreos/ignition/v2/config/v3_4"
	tr34 "github.com/coreos/ignition/v2/config/v3_4/translate"
	types34 "github.com/coreos/ignition/v2/config/v3_4/types"
	"github.com/coreos/ignition/v2/config/v3_5"
	tr35 "github.com/coreos/ignition/v2/config/v3_5/translate"
	types35 "github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/coreos/ignition/v2/config/v3_6"
	tr36 "github.com/coreos/ignition/v2/config/v3_6/translate"
	types36 "github.com/coreos/ignition/v2/config/v3_6/types"
	"github.com/coreos/vcontext/report"
)

// spec is one Ignition spec version Render can produce. parse is that
// version's ParseCompatibleVersion: it accepts a config of this version or
// any older one, translates it up, and validates it. up carries the
// generated base (spec 3.0.0) to this version with Ignition's own
// translators, without the JSON round trip and the validation at every
// version on the way that parse would do: Render validates the merged
// config, base included, as served. Everything else the renderer does
// (merge, marshal, validate) works on any version through reflection, so
// parse and up are the only per-version code.
type spec struct {
	version string
	parse   func(raw []byte) (any, report.Report, error)
	up      func(base types30.Config) any
}

// specOf adapts one version's typed ParseCompatibleVersion and translation
// from 3.0.0 to spec.
func specOf[C any](version string, parse func([]byte) (C, report.Report, error), up func(types30.Config) C) spec {
	return spec{
		version: version,
		parse: func(raw []byte) (any, report.Report, error) {
			c, r, err := parse(raw)
			return c, r, err
		},
		up: func(base types30.Config) any { return up(base) },
	}
}

// The translations from 3.0.0 to each later version, one step after the
// other as ParseCompatibleVersion takes them.
func id30(c types30.Config) types30.Config { return c }
func to31(c types30.Config) types31.Config { return tr31.Translate(c) }
func to32(c types30.Config) types32.Config { return tr32.Translate(to31(c)) }
func to33(c types30.Config) types33.Config { return tr33.Translate(to32(c)) }
func to34(c types30.Config) types34.Config { return tr34.Translate(to33(c)) }
func to35(c types30.Config) types35.Config { return tr35.Translate(to34(c)) }
func to36(c types30.Config) types36.Config { return tr36.Translate(to35(c)) }

// specs lists the stable spec versions of the vendored Ignition, oldest
// first. Experimental versions are left out: an image that declares one
// could be handed a config its own Ignition no longer accepts.
func specs() []spec {
	return []spec{
		specOf("3.0.0", v3_0.ParseCompatibleVersion, id30),
		specOf("3.1.0", v3_1.ParseCompatibleVersion, to31),
		specOf("3.2.0", v3_2.ParseCompatibleVersion, to32),
		specOf("3.3.0", v3_3.ParseCompatibleVersion, to33),
		specOf("3.4.0", v3_4.ParseCompatibleVersion, to34),
		specOf("3.5.0", v3_5.ParseCompatibleVersion, to35),
		specOf("3.6.0", v3_6.ParseCompatibleVersion, to36),
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
