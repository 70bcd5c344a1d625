package web

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// localPath returns p if it is a path on this server, else "/": the login
// form's next parameter must never send the browser elsewhere afterwards
// (an open redirect lends this server's name to a phishing link).
//
// Browsers read a Location more loosely than Go does. The WHATWG URL parser
// drops every tab, CR and LF and takes a backslash for a slash, so
// "/\t/evil.example" and "/\\evil.example" both become "//evil.example",
// another host. So p must start with one "/" not followed by "/" or "\",
// and hold no control character and no backslash anywhere; the same holds
// for p percent-decoded (as often as it decodes), so that no encoded form
// slips past a later decoding either.
func localPath(p string) string {
	d := p
	for range 4 { // a few rounds of decoding; anything encoded deeper is refused
		if !samePath(d) {
			return "/"
		}
		next, err := url.PathUnescape(d)
		if err != nil {
			return "/"
		}
		if next == d {
			return p
		}
		d = next
	}
	return "/"
}

// samePath reports whether p, read as a browser reads a Location, is a path
// on the same origin.
func samePath(p string) bool {
	if !utf8.ValidString(p) || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	for _, r := range p {
		if r == '\\' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}
