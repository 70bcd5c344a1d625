package inventory

import (
	"encoding/base64"
	"errors"
	"strings"
)

// ErrBadCursor means a listing's cursor is not one a page returned.
var ErrBadCursor = errors.New("bad cursor")

// makeCursor encodes the sort key of a listing's last row as an opaque
// cursor: the next page starts after it. NUL cannot occur in the stored
// text of MACs, names, sites and times, so it separates the parts.
func makeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "\x00")))
}

// parseCursor decodes a cursor of n parts.
func parseCursor(c string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, ErrBadCursor
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != n {
		return nil, ErrBadCursor
	}
	return parts, nil
}
