package web

import (
	"strings"
)

// The query page's statement check. It is not the guard: the read-only
// connection is (see query.go). It exists to refuse what is plainly not a
// query with a message that says so, before SQLite says "attempt to write a
// readonly database".

// refusedWords are statement keywords that never belong in a query. Their
// appearance anywhere outside strings and comments refuses the statement:
// "WITH x AS (SELECT 1) DELETE FROM ..." begins like a query.
var refusedWords = map[string]string{
	"INSERT": "writes", "UPDATE": "writes", "DELETE": "writes", "UPSERT": "writes",
	"CREATE": "changes the schema", "DROP": "changes the schema", "ALTER": "changes the schema",
	"REINDEX": "writes", "VACUUM": "writes", "ANALYZE": "writes",
	"ATTACH": "opens other files", "DETACH": "changes the connection",
	"PRAGMA": "changes the connection",
	"BEGIN":  "controls transactions", "COMMIT": "controls transactions",
	"ROLLBACK": "controls transactions", "SAVEPOINT": "controls transactions", "RELEASE": "controls transactions",
	"LOAD_EXTENSION": "loads code",
}

// checkQuery refuses anything but one SELECT (or WITH ... SELECT)
// statement, with a message naming the problem.
func checkQuery(q string) error {
	words, extra := sqlWords(q)
	if len(words) == 0 {
		return kindf(ErrBadRequest, "write a SELECT statement")
	}
	if extra {
		return kindf(ErrBadRequest, "one statement at a time: remove what follows the first ';'")
	}
	if words[0] != "SELECT" && words[0] != "WITH" {
		return kindf(ErrBadRequest, "%s is refused: this page runs SELECT (and WITH ... SELECT) statements only, on a read-only connection", words[0])
	}
	for i, w := range words {
		why, refused := refusedWords[w]
		if w == "REPLACE" && i+1 < len(words) && words[i+1] == "INTO" {
			refused, why = true, "writes"
		}
		if refused {
			return kindf(ErrBadRequest, "%s is refused: it %s, and this page only reads (SELECT and WITH ... SELECT, on a read-only connection)", w, why)
		}
	}
	return nil
}

// sqlWords returns the bare words of q in upper case, skipping comments,
// string literals and quoted identifiers, and whether anything but
// whitespace and comments follows a ';'.
func sqlWords(q string) (words []string, extra bool) {
	ended := false
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
			continue
		case strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return words, extra
			}
			i += j + 1
			continue
		case strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return words, extra
			}
			i += j + 4
			continue
		}
		if ended {
			extra = true
		}
		switch {
		case c == ';':
			ended = true
			i++
		case c == '\'' || c == '"' || c == '`' || c == '[':
			i = skipQuoted(q, i)
		case isWordStart(c):
			j := i + 1
			for j < len(q) && isWordPart(q[j]) {
				j++
			}
			words = append(words, strings.ToUpper(q[i:j]))
			i = j
		default:
			i++
		}
	}
	return words, extra
}

// skipQuoted returns the index after the quoted token starting at i; a
// doubled closing quote is part of the token, as SQL has it.
func skipQuoted(q string, i int) int {
	closing := q[i]
	if closing == '[' {
		closing = ']'
	}
	for j := i + 1; j < len(q); j++ {
		if q[j] != closing {
			continue
		}
		if closing != ']' && j+1 < len(q) && q[j+1] == closing {
			j++
			continue
		}
		return j + 1
	}
	return len(q)
}

func isWordStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isWordPart(c byte) bool { return isWordStart(c) || c == '$' || (c >= '0' && c <= '9') }
