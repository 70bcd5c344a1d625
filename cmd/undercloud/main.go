// Command undercloud is the bare-metal provisioning server and its CLI.
//
// main only calls run: every command parses its flags (and UNDERCLOUD_*
// environment) into a config that is validated before anything starts.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ex exitError
	switch {
	case err == nil:
	case errors.As(err, &ex):
		if ex.msg != "" {
			fmt.Fprintln(os.Stderr, "undercloud:", ex.msg)
		}
		os.Exit(ex.code)
	default:
		fmt.Fprintln(os.Stderr, "undercloud:", err)
		os.Exit(1)
	}
}

// exitError carries an exit code (1: the command found problems, 2: usage).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the site server: DHCP, TFTP, boot HTTP, web UI and API", runServe},
		{"validate", "check a site repo version through the validation gate (for the repo's CI)", runValidate},
		{"render", "print one machine's Ignition config", runRender},
		{"status", "show sites and machines of a running server", runStatus},
		{"machine", "machine rebuild SITE/NAME: reboot a machine into its site's active version", runMachine},
		{"rollout", "rollout start|pause|resume|abort|confirm|status SITE: rebuild a site's outdated machines", runRollout},
		{"backup", "backup DEST: copy a running server's inventory and keys into DEST", runBackup},
		{"version", "print the version of this binary", runVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitError{code: 2}
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return usageError("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprint(w, `undercloud binds git-versioned site configs to bare-metal machines and boots
them over DHCP, TFTP and iPXE with immutable images and Ignition configs.

Usage: undercloud COMMAND [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "undercloud COMMAND -h" for a command's flags. Flags of serve can also be
given as UNDERCLOUD_<FLAG> environment variables (e.g. UNDERCLOUD_REPO).
`)
}
