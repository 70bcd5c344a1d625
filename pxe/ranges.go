package pxe

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
)

// maxRanges is the most byte ranges one artifact request may ask for. A
// firmware or a resuming download asks for one; each range of a multipart
// answer costs a part header of about 100 bytes, so a 1 MB header of
// overlapping tiny ranges made a 35 MB response (http.ServeContent caps
// only the sum of the ranges' lengths, not their number or overlap).
const maxRanges = 4

// allowRanges answers 416 Range Not Satisfiable, and returns false, when r
// asks f for more than maxRanges ranges or for ranges that overlap;
// otherwise it leaves the request to http.ServeContent (RFC 9110 §14.2
// lets a server refuse such requests).
func allowRanges(w http.ResponseWriter, r *http.Request, f *os.File) bool {
	h := r.Header.Get("Range")
	if h == "" {
		return true
	}
	st, err := f.Stat()
	if err != nil {
		return true // ServeContent finds the size itself, by seeking
	}
	if rangesOK(h, st.Size()) {
		return true
	}
	w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", st.Size()))
	bare(w, http.StatusRequestedRangeNotSatisfiable)
	return false
}

// rangesOK reports whether a Range header (RFC 9110 §14.1.2) asks a content
// of size bytes for at most maxRanges ranges, none overlapping another. A
// header it cannot parse is left to http.ServeContent, which refuses it.
func rangesOK(h string, size int64) bool {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return true
	}
	type span struct{ start, end int64 } // [start, end)
	var spans []span
	n := 0
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if n++; n > maxRanges {
			return false
		}
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return true
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var s span
		switch {
		case first == "": // suffix: the last N bytes
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil {
				return true
			}
			s = span{max(size-n, 0), size}
		default:
			a, err := strconv.ParseInt(first, 10, 64)
			if err != nil {
				return true
			}
			s = span{a, size}
			if last != "" {
				b, err := strconv.ParseInt(last, 10, 64)
				if err != nil {
					return true
				}
				s.end = min(b+1, size)
			}
		}
		if s.start >= s.end {
			continue // unsatisfiable: ServeContent skips it
		}
		spans = append(spans, s)
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return false
		}
	}
	return true
}
