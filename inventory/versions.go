package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/undercloud/undercloud/sites"
)

// VersionStatus is what the validation gate made of a site's config version.
type VersionStatus string

// Version statuses.
const (
	// VersionActive: accepted; the site serves it. One per site at most.
	VersionActive VersionStatus = "active"
	// VersionRejected: failed validation; kept with its reasons.
	VersionRejected VersionStatus = "rejected"
	// VersionSuperseded: was active until another version was accepted.
	VersionSuperseded VersionStatus = "superseded"
)

// String returns the status's name, as stored.
func (s VersionStatus) String() string { return string(s) }

// SiteVersion is one config version of a site and its validation result.
type SiteVersion struct {
	Site        string
	Version     sites.Version
	Status      VersionStatus
	Reasons     []string // the problems found, when rejected
	ValidatedAt time.Time
}

// SiteState is what the inventory holds of a site.
type SiteState struct {
	Name   string
	Active *SiteVersion // nil until a version is accepted
	// Latest is the version validated last: the active one, or a rejected
	// one the site does not serve.
	Latest         *SiteVersion
	Bootstrapped   bool
	BootstrappedAt time.Time
}

// RecordValidation stores the gate's verdict on version v of site: accepted
// when problems is empty. An accepted version becomes the site's active one
// and the previous active version is superseded, in one transaction. A
// rejected version is kept with its problems and the active one is left
// alone; if the rejected commit is the active one itself, it stays active
// with the new reasons attached, since the site keeps serving it.
func (db *DB) RecordValidation(ctx context.Context, site string, v sites.Version, problems sites.Problems) (SiteVersion, error) {
	sv := SiteVersion{Site: site, Version: v, Status: VersionActive, Reasons: []string{}}
	for _, p := range problems {
		sv.Reasons = append(sv.Reasons, p.String())
	}
	if len(problems) > 0 {
		sv.Status = VersionRejected
	}
	tags, err := json.Marshal(nonNil(v.Tags))
	if err != nil {
		return SiteVersion{}, err
	}
	reasons, err := json.Marshal(sv.Reasons)
	if err != nil {
		return SiteVersion{}, err
	}
	var status string
	err = db.do(ctx, func(t *tx) error {
		now := t.db().now()
		sv.ValidatedAt = now
		if _, err := t.exec(`INSERT INTO sites (name) VALUES (?) ON CONFLICT (name) DO NOTHING`, site); err != nil {
			return err
		}
		if sv.Status == VersionActive {
			if _, err := t.exec(`UPDATE site_versions SET status = 'superseded'
				WHERE site = ? AND status = 'active' AND commit_hash != ?`, site, v.Commit); err != nil {
				return err
			}
			if _, err := t.exec(`UPDATE sites SET active_commit = ? WHERE name = ?`, v.Commit, site); err != nil {
				return err
			}
		}
		return t.queryRow(`INSERT INTO site_versions (site, commit_hash, ref, tags, message, author, commit_time, status, reasons, validated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (site, commit_hash) DO UPDATE SET ref = excluded.ref, tags = excluded.tags,
				message = excluded.message, author = excluded.author, commit_time = excluded.commit_time,
				status = CASE WHEN site_versions.status = 'active' THEN 'active' ELSE excluded.status END,
				reasons = excluded.reasons, validated_at = excluded.validated_at
			RETURNING status`,
			site, v.Commit, v.Ref, string(tags), v.Message, v.Author, fmtTime(v.Time), string(sv.Status),
			string(reasons), fmtTime(now)).Scan(&status)
	})
	if err != nil {
		return SiteVersion{}, fmt.Errorf("record validation of site %s at %s: %w", site, v.Short(), err)
	}
	sv.Status = VersionStatus(status)
	sv.Version.Time = sv.Version.Time.UTC().Truncate(time.Millisecond)
	return sv, nil
}

// RecordVersion stores the gate's verdict (sites.VersionStore).
func (db *DB) RecordVersion(ctx context.Context, site string, v sites.Version, problems sites.Problems) error {
	_, err := db.RecordValidation(ctx, site, v, problems)
	return err
}

// ActiveCommit returns the site's active commit, "" when it has none
// (sites.VersionStore).
func (db *DB) ActiveCommit(ctx context.Context, site string) (string, error) {
	var active sql.NullString
	err := db.queryRow(ctx, `SELECT active_commit FROM sites WHERE name = ?`, site).Scan(&active)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("active version of site %s: %w", site, err)
	}
	return active.String, nil
}

// Accepted reports whether the gate accepted commit for site: it is the
// active version or was before (sites.VersionStore).
func (db *DB) Accepted(ctx context.Context, site, commit string) (bool, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*) FROM site_versions WHERE site = ? AND commit_hash = ?
		AND status IN ('active', 'superseded')`, site, commit).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("version %s of site %s: %w", commit, site, err)
	}
	return n > 0, nil
}

// MarkBootstrapped records that site's cluster has been bootstrapped; the
// first time is kept.
func (db *DB) MarkBootstrapped(ctx context.Context, site string) error {
	err := db.do(ctx, func(t *tx) error {
		res, err := t.exec(`UPDATE sites SET bootstrapped = 1, bootstrapped_at = coalesce(bootstrapped_at, ?) WHERE name = ?`,
			fmtTime(t.db().now()), site)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("no such site: %w", ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark site %s bootstrapped: %w", site, err)
	}
	return nil
}

const versionColumns = `site, commit_hash, ref, tags, message, author, commit_time, status, reasons, validated_at`

func scanVersion(s scanner) (SiteVersion, error) {
	var sv SiteVersion
	var tags, reasons, status string
	var commitTime, validated sql.NullString
	if err := s.Scan(&sv.Site, &sv.Version.Commit, &sv.Version.Ref, &tags, &sv.Version.Message, &sv.Version.Author,
		&commitTime, &status, &reasons, &validated); err != nil {
		return sv, err
	}
	sv.Status = VersionStatus(status)
	if err := json.Unmarshal([]byte(tags), &sv.Version.Tags); err != nil {
		return sv, fmt.Errorf("stored tags %q: %w", tags, err)
	}
	if len(sv.Version.Tags) == 0 {
		sv.Version.Tags = nil
	}
	if err := json.Unmarshal([]byte(reasons), &sv.Reasons); err != nil {
		return sv, fmt.Errorf("stored reasons %q: %w", reasons, err)
	}
	var err error
	if sv.Version.Time, err = parseTime(commitTime); err != nil {
		return sv, err
	}
	sv.ValidatedAt, err = parseTime(validated)
	return sv, err
}

// SiteVersions returns the versions validated for site, the latest
// validation first, at most n (100 if n is 0).
func (db *DB) SiteVersions(ctx context.Context, site string, n int) ([]SiteVersion, error) {
	rows, err := db.query(ctx, `SELECT `+versionColumns+` FROM site_versions WHERE site = ?
		ORDER BY validated_at DESC, rowid DESC LIMIT ?`, site, limit(n))
	if err != nil {
		return nil, fmt.Errorf("versions of site %s: %w", site, err)
	}
	defer rows.Close()
	var vs []SiteVersion
	for rows.Next() {
		sv, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("versions of site %s: %w", site, err)
		}
		vs = append(vs, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("versions of site %s: %w", site, err)
	}
	return vs, nil
}

// Site returns what the inventory holds of the named site.
func (db *DB) Site(ctx context.Context, name string) (SiteState, error) {
	s := SiteState{Name: name}
	var active, at sql.NullString
	err := db.queryRow(ctx, `SELECT active_commit, bootstrapped, bootstrapped_at FROM sites WHERE name = ?`, name).
		Scan(&active, &s.Bootstrapped, &at)
	if err != nil {
		return SiteState{}, fmt.Errorf("site %s: %w", name, err)
	}
	if s.BootstrappedAt, err = parseTime(at); err != nil {
		return SiteState{}, fmt.Errorf("site %s: %w", name, err)
	}
	vs, err := db.SiteVersions(ctx, name, 1)
	if err != nil {
		return SiteState{}, err
	}
	if len(vs) > 0 {
		s.Latest = &vs[0]
	}
	if active.Valid {
		sv, err := scanVersion(db.queryRow(ctx, `SELECT `+versionColumns+` FROM site_versions
			WHERE site = ? AND commit_hash = ?`, name, active.String))
		if err != nil {
			return SiteState{}, fmt.Errorf("site %s: active version %s: %w", name, active.String, err)
		}
		s.Active = &sv
	}
	return s, nil
}

// Sites returns every site the inventory holds, by name.
func (db *DB) Sites(ctx context.Context) ([]SiteState, error) {
	rows, err := db.query(ctx, `SELECT name FROM sites ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list sites: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	out := make([]SiteState, 0, len(names))
	for _, n := range names {
		s, err := db.Site(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
