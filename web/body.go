package web

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Request bodies. The API takes JSON, the UI's forms post
// application/x-www-form-urlencoded. A body of any other type used to be
// read as no body at all, so the answer named the wrong problem ("write a
// SELECT statement") or, worse, did something else than asked: a rollout
// start whose JSON selection came as text/plain rolled the whole site.

// bodyType is how a request's body is to be read.
type bodyType int

const (
	bodyNone bodyType = iota // no body
	bodyJSON                 // application/json
	bodyForm                 // a form: urlencoded or multipart
)

// bodyOf says how to read r's body. A body of another type is refused with
// ErrUnsupportedMedia, naming the type expected (want, e.g. `JSON
// {"sql": "SELECT ..."}`) and the type that came.
func bodyOf(r *http.Request, want string) (bodyType, error) {
	ct := r.Header.Get(echo.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err == nil && mt == echo.MIMEApplicationJSON:
		return bodyJSON, nil
	case err == nil && (mt == echo.MIMEApplicationForm || mt == echo.MIMEMultipartForm):
		return bodyForm, nil
	case r.ContentLength == 0:
		return bodyNone, nil // a type without a body is harmless
	}
	return bodyNone, kindf(ErrUnsupportedMedia, "the body must be %s with Content-Type: application/json; got Content-Type: %s", want, contentType(ct))
}

// contentType names a Content-Type header's value for an error message.
func contentType(ct string) string {
	if ct == "" {
		return "(none)"
	}
	return ct
}

// decodeJSON reads r's JSON body into v, refusing unknown fields (a
// misspelt key would otherwise be silently dropped) and anything beyond
// limit bytes. An empty body leaves v as it is when optional. want is the
// body's shape for the error message.
func decodeJSON(r *http.Request, v any, limit int64, optional bool, want string) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	switch {
	case err == nil:
		if dec.More() {
			return kindf(ErrBadRequest, "the body must be %s: it has more after the JSON object", want)
		}
		return nil
	case errors.Is(err, io.EOF) && optional:
		return nil
	case errors.Is(err, io.EOF):
		return kindf(ErrBadRequest, "the body must be %s: it is empty", want)
	}
	return kindf(ErrBadRequest, "the body must be %s: %v", want, err)
}
