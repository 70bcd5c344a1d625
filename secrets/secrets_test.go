package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secrets.yaml")
	os.WriteFile(file, []byte("api_tokens:\n  - {name: alice, role: operator, token: 0123456789abcdef}\nbmc:\n  lab-bmc: {username: admin, password: filepass}\n"), 0o600)
	s, err := Load(file, []string{"UNDERCLOUD_BMC_LAB_BMC_PASSWORD=envpass", "UNDERCLOUD_BMC_RACK_7_USERNAME=root", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if s.BMC["lab-bmc"] != (Login{"admin", "envpass"}) || s.BMC["rack-7"].Username != "root" || len(s.APITokens) != 1 {
		t.Fatalf("secrets = %+v", s)
	}
	os.Chmod(file, 0o644)
	if _, err := Load(file, nil); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a world-readable secrets file was accepted: %v", err)
	}
	for env, want := range map[string]string{
		"UNDERCLOUD_API_TOKENS=bob:admin:0123456789abcdef": `role "admin": want viewer or operator`,
		"UNDERCLOUD_API_TOKENS=bob:viewer:short":           "at least 16 characters",
		"UNDERCLOUD_API_TOKENS=bob":                        "want name:role:token",
	} {
		if _, err := Load("", []string{env}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", env, err, want)
		}
	}
	// The boot token key is kept in the data dir across restarts.
	k1, err := (&Secrets{}).TokenKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := (&Secrets{}).TokenKey(dir)
	if len(k1) != 32 || string(k1) != string(k2) {
		t.Fatalf("boot token key not kept: %x then %x", k1, k2)
	}
	st, _ := os.Stat(filepath.Join(dir, "boot-token.key"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("boot token key file mode %v", st.Mode().Perm())
	}
}
