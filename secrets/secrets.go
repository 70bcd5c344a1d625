// Package secrets loads what the server must know but the site repo must
// never hold: the key that signs per-boot tokens, the API tokens and the BMC
// passwords, from a mode-0600 file and UNDERCLOUD_* environment variables.
package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secrets is what the server must know but the site repo must never hold:
// the key that signs per-boot tokens, the API tokens and the BMC passwords.
// They come from the secrets file (YAML, mode 0600) and UNDERCLOUD_*
// environment variables, which win.
//
//	boot_token_key: <base64, at least 16 bytes>
//	api_tokens:
//	  - {name: alice, role: operator, token: <random>}
//	  - {name: grafana, role: viewer, token: <random>}
//	bmc:
//	  lab-bmc: {username: admin, password: <password>}
//
// Environment: UNDERCLOUD_BOOT_TOKEN_KEY, UNDERCLOUD_API_TOKENS
// ("name:role:token,..."), UNDERCLOUD_BMC_<NAME>_USERNAME and _PASSWORD (NAME
// upper-cased, dashes as underscores).
type Secrets struct {
	BootTokenKey string           `yaml:"boot_token_key"`
	APITokens    []APIToken       `yaml:"api_tokens"`
	BMC          map[string]Login `yaml:"bmc"`
}

// APIToken is a named API token with its role (viewer or operator).
type APIToken struct {
	Name  string `yaml:"name"`
	Role  string `yaml:"role"`
	Token string `yaml:"token"`
}

// Login is a BMC user name and password.
type Login struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Load reads the secrets file (if path is set) and the environment.
func Load(path string, environ []string) (*Secrets, error) {
	s := &Secrets{BMC: map[string]Login{}}
	if path != "" {
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("secrets file: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("secrets file %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secrets file: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(s); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("secrets file %s: %v", path, err)
		}
		if s.BMC == nil {
			s.BMC = map[string]Login{}
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "UNDERCLOUD_") {
			env[k] = v
		}
	}
	if v := env["UNDERCLOUD_BOOT_TOKEN_KEY"]; v != "" {
		s.BootTokenKey = v
	}
	if v := env["UNDERCLOUD_API_TOKENS"]; v != "" {
		s.APITokens = nil
		for i, item := range strings.Split(v, ",") {
			parts := strings.SplitN(strings.TrimSpace(item), ":", 3)
			if len(parts) != 3 {
				return nil, fmt.Errorf("UNDERCLOUD_API_TOKENS item %d: want name:role:token", i+1)
			}
			s.APITokens = append(s.APITokens, APIToken{Name: parts[0], Role: parts[1], Token: parts[2]})
		}
	}
	for k, v := range env {
		rest, ok := strings.CutPrefix(k, "UNDERCLOUD_BMC_")
		if !ok {
			continue
		}
		var field string
		for _, f := range []string{"_USERNAME", "_PASSWORD"} {
			if strings.HasSuffix(rest, f) {
				rest, field = strings.TrimSuffix(rest, f), f
			}
		}
		if field == "" {
			continue
		}
		name := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
		l := s.BMC[name]
		if field == "_USERNAME" {
			l.Username = v
		} else {
			l.Password = v
		}
		s.BMC[name] = l
	}
	return s, s.check()
}

func (s *Secrets) check() error {
	seen := map[string]bool{}
	for i, t := range s.APITokens {
		switch {
		case t.Name == "":
			return fmt.Errorf("api_tokens[%d]: name is empty", i)
		case t.Role != "viewer" && t.Role != "operator":
			return fmt.Errorf("api_tokens[%d] (%s): role %q: want viewer or operator", i, t.Name, t.Role)
		case len(t.Token) < 16:
			return fmt.Errorf("api_tokens[%d] (%s): token must be at least 16 characters", i, t.Name)
		case seen[t.Token]:
			return fmt.Errorf("api_tokens[%d] (%s): the same token is given twice", i, t.Name)
		}
		seen[t.Token] = true
	}
	return nil
}

// BMCNames lists the credential names known, for error messages.
func (s *Secrets) BMCNames() string {
	var names []string
	for n := range s.BMC {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// TokenKey returns the key that signs per-boot tokens: the configured
// one, else one kept in the data directory. It must survive restarts: a new
// key would make every machine booting now fail its config fetch.
func (s *Secrets) TokenKey(dataDir string) ([]byte, error) {
	if s.BootTokenKey != "" {
		k, err := base64.StdEncoding.DecodeString(s.BootTokenKey)
		if err != nil || len(k) < 16 {
			return nil, errors.New("boot_token_key must be base64 of at least 16 bytes")
		}
		return k, nil
	}
	path := filepath.Join(dataDir, "boot-token.key")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 16 {
		return b, nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, k, 0o600); err != nil {
		return nil, fmt.Errorf("keep boot token key: %w", err)
	}
	return k, nil
}
