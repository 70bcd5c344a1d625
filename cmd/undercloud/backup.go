package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// backupFiles are the data dir's files a backup copies, besides the
// inventory: what a restored server needs to honour the tokens and the
// certificate the old one handed out. The repo mirror and the image store
// are left out: the server fetches them again.
var backupFiles = []string{"boot-token.key", generatedCert, generatedKey}

// inventoryFile is the inventory database's name in the data dir.
const inventoryFile = "inventory.db"

const backupUsage = `Usage: undercloud backup [--data-dir DIR] DEST

Copies what a server cannot rebuild from its site repo into the directory
DEST (created, mode 0700; it must not hold any of the files): a consistent
snapshot of the inventory (DATA-DIR/inventory.db, taken through SQLite's
VACUUM INTO while the server runs), the boot-token key (boot-token.key) and
the generated operator TLS certificate and key, when the data dir has them.
Every file is written mode 0600. Run it as a user who can read the data dir
(root, or the service's user).

Restore: stop the server, copy DEST's files into an empty data dir owned by
the service's user (mode 0600 each) and start the server.

The secrets file (boot_token_key, API tokens, BMC passwords) and a
--tls-cert/--tls-key pair of your own live outside the data dir: back them up
with /etc.

Flags:
`

// runBackup is `undercloud backup DEST`.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := os.Getenv(envName("data-dir"))
	if dataDir == "" {
		dataDir = "/var/lib/undercloud"
	}
	fs.StringVar(&dataDir, "data-dir", dataDir, "the server's data dir (env UNDERCLOUD_DATA_DIR)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), backupUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if fs.NArg() != 1 {
		return usageError("backup takes one argument, the directory to write to; got %d", fs.NArg())
	}
	written, err := backup(ctx, dataDir, fs.Arg(0))
	for _, f := range written {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	if err != nil {
		return err
	}
	if !contains(written, filepath.Join(fs.Arg(0), "boot-token.key")) {
		fmt.Fprintf(stdout, "note: %s has no boot-token.key: the key is in the secrets file or the environment (boot_token_key); back that up\n", dataDir)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// backup writes the inventory snapshot and backupFiles of dataDir into
// dest and returns the paths it wrote. It writes nothing if dest holds any
// of the files already.
func backup(ctx context.Context, dataDir, dest string) ([]string, error) {
	src := filepath.Join(dataDir, inventoryFile)
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("backup: no inventory: %w", err)
	}
	names := []string{inventoryFile}
	for _, n := range backupFiles {
		if _, err := os.Stat(filepath.Join(dataDir, n)); err == nil {
			names = append(names, n)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(dest, n)); err == nil {
			return nil, fmt.Errorf("backup: %s exists: refusing to overwrite a backup", filepath.Join(dest, n))
		}
	}
	var written []string
	out := filepath.Join(dest, inventoryFile)
	if err := snapshot(ctx, src, out); err != nil {
		return written, err
	}
	written = append(written, out)
	for _, n := range names[1:] {
		out := filepath.Join(dest, n)
		if err := copyFile(filepath.Join(dataDir, n), out); err != nil {
			return written, err
		}
		written = append(written, out)
	}
	return written, nil
}

// snapshot writes a consistent copy of the inventory at src to the new
// file out, mode 0600. VACUUM INTO reads in one read transaction, so the
// running server's writer goes on committing to the WAL meanwhile and the
// copy is the database as of one commit. It runs on a read-only connection:
// the backup can never change the inventory.
func snapshot(ctx context.Context, src, out string) error {
	// VACUUM INTO accepts an existing empty file: creating it first
	// gives the copy its mode and refuses one that appeared meanwhile.
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	// Not inventory.OpenReadOnly: its query_only pragma refuses VACUUM
	// INTO. mode=ro opens the database file read-only all the same.
	abs, err := filepath.Abs(src)
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("backup: %w", err)
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("backup: open inventory %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", out); err != nil {
		os.Remove(out)
		return fmt.Errorf("backup: snapshot of %s: %w", src, err)
	}
	return nil
}

// copyFile copies src to the new file dst, mode 0600, synced.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("backup: copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}
