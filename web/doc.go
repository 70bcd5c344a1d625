// Package web is the operator-facing side of the site server: the web UI
// (server-rendered HTML with a little optional JavaScript), the JSON API of
// docs/api.md with its OpenAPI document, and the Prometheus metrics. It is
// the only package that uses echo.
//
// Server.Handler mounts all of it on the server's one HTTP port next to the
// machine-facing boot endpoints of package pxe, which it passes through
// untouched: machines authenticate with per-boot tokens, operators with API
// tokens (bearer) or a session cookie made from one at the login page.
//
// # Security
//
// Every page and endpoint except /login, /static/, /metrics and the boot
// endpoints needs a viewer; every change needs an operator, and a form post
// (or any change made with a session cookie) carries the session's CSRF
// token. Sessions live in memory: a restart of the server logs everybody out.
// Every change, and every refused attempt by a known identity, is written to
// the inventory's audit log. Tokens, BMC credentials and passwords in URLs
// are never rendered nor logged. The SQL page runs SELECTs only, on a
// connection SQLite itself keeps read-only, with row, size and time limits.
//
// # Errors
//
// Handlers return errors wrapping the kinds of errors.go (or the inventory's
// ErrNotFound and ErrConflict); status() is the one place that maps them to
// HTTP statuses, for the UI and the API alike.
package web
