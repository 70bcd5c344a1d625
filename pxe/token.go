package pxe

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// DefaultTokenTTL is how long a boot token stays valid when Tokens.TTL is 0:
// long enough for a slow install, whose booted callback may come hours after
// the script was served.
const DefaultTokenTTL = 24 * time.Hour

// MinTokenKeyLen is the shortest key Tokens accepts.
const MinTokenKeyLen = 16

// Errors of Tokens.Check. Both mean "refuse"; they are told apart for logs.
var (
	ErrTokenInvalid = errors.New("invalid token")
	ErrTokenExpired = errors.New("token expired")
)

// Tokens mints and checks per-boot tokens: proof that a request for a config
// or a callback comes from the boot the server handed a script to. A token is
// an HMAC-SHA256, with Key, over the MAC, the config version, the boot id and
// an expiry time, so checking one needs no database and a token minted for
// another machine or version fails.
type Tokens struct {
	Key []byte           // secret, at least MinTokenKeyLen bytes; shared by every server that checks
	Now func() time.Time // nil means time.Now
	TTL time.Duration    // 0 means DefaultTokenTTL
}

// The token layout, before base64url (RFC 4648 §5, unpadded):
//
//	format (1) | expiry, Unix seconds (8) | len(bootID) (1) | bootID | HMAC-SHA256 (32)
//
// The boot id travels in clear so that it can be read back after the check.
const (
	tokenFormat   = 1
	maxTokenLen   = 256 // base64 characters; a real token is under 140
	maxBootIDLen  = 64
	tokenMACLabel = "undercloud pxe boot token v1"
)

func (t *Tokens) now() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

func (t *Tokens) ttl() time.Duration {
	if t.TTL <= 0 {
		return DefaultTokenTTL
	}
	return t.TTL
}

// Mint returns a token for one boot of the machine mac on version, valid for
// TTL from now. mac should be in canonical form (as the handlers pass it).
func (t *Tokens) Mint(mac, version, bootID string) (string, error) {
	if len(t.Key) < MinTokenKeyLen {
		return "", fmt.Errorf("mint token: key shorter than %d bytes", MinTokenKeyLen)
	}
	if bootID == "" || len(bootID) > maxBootIDLen {
		return "", fmt.Errorf("mint token: boot id must have 1 to %d bytes", maxBootIDLen)
	}
	if len(mac) > 255 || len(version) > 255 {
		return "", fmt.Errorf("mint token: mac or version too long")
	}
	exp := t.now().Add(t.ttl()).Unix()
	b := make([]byte, 0, 1+8+1+len(bootID)+sha256.Size)
	b = append(b, tokenFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(exp))
	b = append(b, byte(len(bootID)))
	b = append(b, bootID...)
	b = append(b, t.sum(mac, version, bootID, exp)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Check verifies that token was minted for exactly mac and version, with this
// key, and has not expired; it returns the token's boot id. Any failure is
// ErrTokenInvalid, or ErrTokenExpired for an authentic token past its time
// (returned with its boot id, so the refusal can join the boot's events).
func (t *Tokens) Check(token, mac, version string) (bootID string, err error) {
	if len(t.Key) < MinTokenKeyLen || len(token) > maxTokenLen || len(mac) > 255 || len(version) > 255 {
		return "", ErrTokenInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 1+8+1+1+sha256.Size || b[0] != tokenFormat {
		return "", ErrTokenInvalid
	}
	// Only the spelling Mint wrote: the decoder skips CR and LF and
	// ignores the last character's spare bits, so a token with a line
	// break in it would otherwise pass (found by FuzzTokenCheck).
	if base64.RawURLEncoding.EncodeToString(b) != token {
		return "", ErrTokenInvalid
	}
	exp := int64(binary.BigEndian.Uint64(b[1:9]))
	n := int(b[9])
	if n == 0 || len(b) != 10+n+sha256.Size {
		return "", ErrTokenInvalid
	}
	id := string(b[10 : 10+n])
	if !hmac.Equal(b[10+n:], t.sum(mac, version, id, exp)) {
		return "", ErrTokenInvalid
	}
	if !t.now().Before(time.Unix(exp, 0)) {
		return id, ErrTokenExpired
	}
	return id, nil
}

// sum is the HMAC over the token's claims. Every variable field is length
// prefixed so that no two claim sets share an input.
func (t *Tokens) sum(mac, version, bootID string, exp int64) []byte {
	h := hmac.New(sha256.New, t.Key)
	h.Write([]byte(tokenMACLabel))
	for _, s := range []string{mac, version, bootID} {
		h.Write([]byte{byte(len(s))})
		h.Write([]byte(s))
	}
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(exp))
	h.Write(e[:])
	return h.Sum(nil)
}

// NewBootID returns a fresh random boot id: 16 hex digits, short enough to
// read in a log, random enough never to repeat within a fleet's history.
func NewBootID() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Heartbeat credentials. A boot token expires (TTL) because it only needs to
// live through one boot; a heartbeat runs as long as the OS does, months.
// So the config served to a boot carries a second credential, minted then,
// bound to the same MAC, version and boot id, without expiry: its validity
// ends when the machine boots again, which only the inventory knows, so the
// server decides that per heartbeat (Callbacks.Heartbeat; see
// provision.heartbeatAccepted). Its own format byte and HMAC label keep a
// boot token from passing as a heartbeat credential and the other way round.
//
//	format (1) | len(bootID) (1) | bootID | HMAC-SHA256 (32)
const (
	heartbeatFormat   = 2
	heartbeatMACLabel = "undercloud pxe heartbeat credential v1"
)

// MintHeartbeat returns the heartbeat credential of one boot of machine mac
// on version.
func (t *Tokens) MintHeartbeat(mac, version, bootID string) (string, error) {
	if len(t.Key) < MinTokenKeyLen {
		return "", fmt.Errorf("mint heartbeat credential: key shorter than %d bytes", MinTokenKeyLen)
	}
	if bootID == "" || len(bootID) > maxBootIDLen {
		return "", fmt.Errorf("mint heartbeat credential: boot id must have 1 to %d bytes", maxBootIDLen)
	}
	if len(mac) > 255 || len(version) > 255 {
		return "", fmt.Errorf("mint heartbeat credential: mac or version too long")
	}
	b := make([]byte, 0, 2+len(bootID)+sha256.Size)
	b = append(b, heartbeatFormat, byte(len(bootID)))
	b = append(b, bootID...)
	b = append(b, t.heartbeatSum(mac, version, bootID)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CheckHeartbeat verifies that cred is a heartbeat credential minted for
// exactly mac and version with this key, and returns its boot id. Whether
// that boot still speaks for the machine is the caller's to decide. Any
// failure is ErrTokenInvalid.
func (t *Tokens) CheckHeartbeat(cred, mac, version string) (bootID string, err error) {
	if len(t.Key) < MinTokenKeyLen || len(cred) > maxTokenLen || len(mac) > 255 || len(version) > 255 {
		return "", ErrTokenInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(cred)
	if err != nil || len(b) < 2+1+sha256.Size || b[0] != heartbeatFormat ||
		base64.RawURLEncoding.EncodeToString(b) != cred {
		return "", ErrTokenInvalid
	}
	n := int(b[1])
	if n == 0 || len(b) != 2+n+sha256.Size {
		return "", ErrTokenInvalid
	}
	id := string(b[2 : 2+n])
	if !hmac.Equal(b[2+n:], t.heartbeatSum(mac, version, id)) {
		return "", ErrTokenInvalid
	}
	return id, nil
}

func (t *Tokens) heartbeatSum(mac, version, bootID string) []byte {
	h := hmac.New(sha256.New, t.Key)
	h.Write([]byte(heartbeatMACLabel))
	for _, s := range []string{mac, version, bootID} {
		h.Write([]byte{byte(len(s))})
		h.Write([]byte(s))
	}
	return h.Sum(nil)
}
