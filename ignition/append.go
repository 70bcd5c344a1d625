package ignition

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// AppendFile returns cfg, an Ignition config of any spec as JSON, with one
// more storage file at path: a whole file with mode and contents, written
// over any file the image has there. It is how a config rendered and
// validated once gets a boot's values without being validated again: the
// rest is untouched, and the new entry is of a shape every spec accepts. It
// refuses a cfg that already writes path (Ignition would refuse the
// duplicate). NewAppender does the same in two steps, for a cfg that gets
// many files appended, one at a time.
func AppendFile(cfg []byte, path string, mode int, contents string) ([]byte, error) {
	a, err := NewAppender(cfg)
	if err != nil {
		return nil, err
	}
	return a.Append(path, mode, contents)
}

// Appender appends one storage file to a config, found once by
// NewAppender: Append only copies bytes around the new entry.
type Appender struct {
	head, tail []byte // cfg split where the entry goes
	// open and close wrap the entry: ",", "" within a non-empty files
	// array; the array or the storage object too when cfg has none.
	open, close string
	paths       map[string]bool // what cfg's files already write
	lead        string          // whitespace before an entry: "\n      " in Render's output
}

// NewAppender reads cfg (a config of any spec as JSON) once to find where
// a storage file goes.
func NewAppender(cfg []byte) (*Appender, error) {
	dec := json.NewDecoder(bytes.NewReader(cfg))
	a := &Appender{paths: map[string]bool{}}
	// object walks an object whose '{' was read, calling member for each
	// key with the decoder before its value (member must consume it); it
	// returns the offset after the last member and whether there was one.
	object := func(member func(key string) error) (end int64, any bool, err error) {
		end = dec.InputOffset()
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return 0, false, err
			}
			key, _ := t.(string)
			if err := member(key); err != nil {
				return 0, false, err
			}
			end, any = dec.InputOffset(), true
		}
		_, err = dec.Token() // '}'
		return end, any, err
	}
	skip := func() error { var v json.RawMessage; return dec.Decode(&v) }
	delim := func(want json.Delim) error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); !ok || d != want {
			return fmt.Errorf("want %q", want)
		}
		return nil
	}
	insert := int64(-1)
	storage := false
	if err := delim('{'); err != nil {
		return nil, fmt.Errorf("config is not a JSON object: %w", err)
	}
	end, anyTop, err := object(func(key string) error {
		if key != "storage" {
			return skip()
		}
		storage = true
		if err := delim('{'); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		files := false
		end, anyStorage, err := object(func(key string) error {
			if key != "files" {
				return skip()
			}
			files = true
			if err := delim('['); err != nil {
				return fmt.Errorf("storage.files: %w", err)
			}
			insert, a.open = dec.InputOffset(), ""
			// Indent the new entry as the first one is.
			rest := cfg[insert:]
			if ws := len(rest) - len(bytes.TrimLeft(rest, " \t\r\n")); ws > 0 && rest[ws] != ']' {
				a.lead = string(rest[:ws])
			}
			for dec.More() {
				var f struct{ Path string }
				if err := dec.Decode(&f); err != nil {
					return fmt.Errorf("storage.files: %w", err)
				}
				a.paths[f.Path] = true
				insert, a.open = dec.InputOffset(), ","
			}
			return delim(']')
		})
		if err != nil {
			return err
		}
		if !files {
			insert, a.open, a.close = end, `"files":[`, "]"
			if anyStorage {
				a.open = "," + a.open
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !storage {
		insert, a.open, a.close = end, `"storage":{"files":[`, "]}"
		if anyTop {
			a.open = "," + a.open
		}
	}
	a.head, a.tail = cfg[:insert], cfg[insert:]
	return a, nil
}

// Append returns the config with the file added; the config it was made
// from is not modified.
func (a *Appender) Append(path string, mode int, contents string) ([]byte, error) {
	if a.paths[path] {
		return nil, fmt.Errorf("append %s: the config already writes it", path)
	}
	f, err := json.MarshalIndent(file(path, mode, contents), strings.TrimLeft(a.lead, "\r\n"), "  ")
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(a.head)+len(a.open)+len(a.lead)+len(f)+len(a.close)+len(a.tail))
	out = append(out, a.head...)
	out = append(out, a.open...)
	out = append(out, a.lead...)
	out = append(out, f...)
	out = append(out, a.close...)
	return append(out, a.tail...), nil
}
