// Package packaging holds the Debian package of undercloud: the systemd
// unit, the settings and example secrets it installs, the maintainer
// scripts and build-deb.sh, which `make deb` runs. Its test builds the
// package, installs it into a root of its own and runs the unit's command
// line as the unprivileged service user in a network namespace.
package packaging
