package pxe

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	key := []byte("0123456789abcdef0123456789abcdef")
	tokens := &Tokens{Key: key, Now: func() time.Time { return now }, TTL: time.Hour}
	const (
		macA = "52:54:00:00:00:0a"
		macB = "52:54:00:00:00:0b"
		v1   = "3f9c2e1d0a7b4c5e6f708192a3b4c5d6e7f80912"
		v2   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	)
	tok, err := tokens.Mint(macA, v1, "b00710")
	if err != nil {
		t.Fatal(err)
	}
	if !isToken(tok) {
		t.Fatalf("token %q is not base64url", tok)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	otherKey := &Tokens{Key: []byte("another key, also 32 bytes long!"), Now: tokens.Now, TTL: time.Hour}
	forged, _ := otherKey.Mint(macA, v1, "b00710")

	tests := map[string]struct {
		token, mac, version string
		at                  time.Time
		want                error
	}{
		"valid":              {tok, macA, v1, now, nil},
		"valid near expiry":  {tok, macA, v1, now.Add(time.Hour - time.Second), nil},
		"expired":            {tok, macA, v1, now.Add(time.Hour), ErrTokenExpired},
		"other machine":      {tok, macB, v1, now, ErrTokenInvalid},
		"other version":      {tok, macA, v2, now, ErrTokenInvalid},
		"garbage":            {"garbage", macA, v1, now, ErrTokenInvalid},
		"empty":              {"", macA, v1, now, ErrTokenInvalid},
		"not base64":         {"!!!!", macA, v1, now, ErrTokenInvalid},
		"truncated":          {tok[:len(tok)-4], macA, v1, now, ErrTokenInvalid},
		"extended":           {tok + "AAAA", macA, v1, now, ErrTokenInvalid},
		"other key":          {forged, macA, v1, now, ErrTokenInvalid},
		"expiry tampered":    {flip(8), macA, v1, now, ErrTokenInvalid},
		"boot id tampered":   {flip(11), macA, v1, now, ErrTokenInvalid},
		"signature tampered": {flip(len(raw) - 1), macA, v1, now, ErrTokenInvalid},
		"format tampered":    {flip(0), macA, v1, now, ErrTokenInvalid},
		"huge":               {strings.Repeat("A", 10000), macA, v1, now, ErrTokenInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			check := &Tokens{Key: key, Now: func() time.Time { return tc.at }, TTL: time.Hour}
			id, err := check.Check(tc.token, tc.mac, tc.version)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Check error = %v, want %v", err, tc.want)
			}
			if err == nil && id != "b00710" {
				t.Errorf("boot id = %q, want b00710", id)
			}
		})
	}
}

func TestTokensMintRefuses(t *testing.T) {
	if _, err := (&Tokens{}).Mint("52:54:00:00:00:0a", "v", "id"); err == nil {
		t.Error("minted without a key")
	}
	if _, err := (&Tokens{Key: []byte("short")}).Mint("52:54:00:00:00:0a", "v", "id"); err == nil {
		t.Error("minted with a short key")
	}
	tk := &Tokens{Key: make([]byte, 32)}
	if _, err := tk.Mint("52:54:00:00:00:0a", "v", ""); err == nil {
		t.Error("minted without a boot id")
	}
	// A keyless checker accepts nothing, not even a token of the zero key.
	tok, _ := tk.Mint("52:54:00:00:00:0a", "v", "id")
	if _, err := (&Tokens{}).Check(tok, "52:54:00:00:00:0a", "v"); err == nil {
		t.Error("a keyless checker accepted a token")
	}
}

func TestTokensDefaultTTL(t *testing.T) {
	now := time.Now()
	tk := &Tokens{Key: make([]byte, 32), Now: func() time.Time { return now }}
	tok, err := tk.Mint("52:54:00:00:00:0a", "v", "id")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(DefaultTokenTTL - time.Minute)
	if _, err := tk.Check(tok, "52:54:00:00:00:0a", "v"); err != nil {
		t.Fatalf("token expired before DefaultTokenTTL: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := tk.Check(tok, "52:54:00:00:00:0a", "v"); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("token valid after DefaultTokenTTL: %v", err)
	}
}

func TestNewBootID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewBootID()
		if len(id) != 16 || seen[id] {
			t.Fatalf("boot id %q: wrong length or repeated", id)
		}
		seen[id] = true
	}
}

func TestHeartbeatCredentials(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tokens := &Tokens{Key: []byte("0123456789abcdef0123456789abcdef"), Now: clock, TTL: time.Hour}
	const (
		macA = "52:54:00:00:00:0a"
		macB = "52:54:00:00:00:0b"
		v1   = "3f9c2e1d0a7b4c5e6f708192a3b4c5d6e7f80912"
		v2   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	)
	cred, err := tokens.MintHeartbeat(macA, v1, "b00710")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := tokens.Mint(macA, v1, "b00710")
	other := &Tokens{Key: []byte("another key, also 32 bytes long!")}
	forged, _ := other.MintHeartbeat(macA, v1, "b00710")
	raw, _ := base64.RawURLEncoding.DecodeString(cred)
	raw[len(raw)-1] ^= 1
	flipped := base64.RawURLEncoding.EncodeToString(raw)

	now = now.Add(365 * 24 * time.Hour) // no expiry: a year later, still authentic
	if id, err := tokens.CheckHeartbeat(cred, macA, v1); err != nil || id != "b00710" {
		t.Fatalf("CheckHeartbeat a year on = %q, %v", id, err)
	}
	for name, tc := range map[string]struct{ cred, mac, version string }{
		"another MAC":           {cred, macB, v1},
		"another version":       {cred, macA, v2},
		"another key":           {forged, macA, v1},
		"flipped bit":           {flipped, macA, v1},
		"a boot token":          {tok, macA, v1},
		"empty":                 {"", macA, v1},
		"line break in it":      {cred[:10] + "\n" + cred[10:], macA, v1},
		"not base64":            {"!!!", macA, v1},
		"over the length limit": {strings.Repeat("A", maxTokenLen+1), macA, v1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tokens.CheckHeartbeat(tc.cred, tc.mac, tc.version); !errors.Is(err, ErrTokenInvalid) {
				t.Errorf("CheckHeartbeat = %v, want ErrTokenInvalid", err)
			}
		})
	}
	t.Run("a heartbeat credential is no boot token", func(t *testing.T) {
		if _, err := tokens.Check(cred, macA, v1); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("Check(heartbeat credential) = %v, want ErrTokenInvalid", err)
		}
	})
}
