// Package power switches machines on and off through their BMC, so that a
// rebuild can reboot a machine into the network boot that installs the site's
// active config version.
//
// A site config names each machine's BMC driver; [New] turns that name, an
// address and credentials into a [Driver]:
//
//   - ipmi: IPMI over LAN through ipmitool (Debian package ipmitool). Address
//     is host[:port], port 623 by default. ipmitool is the reference client:
//     every BMC vendor tests against it, its output for the few commands used
//     here ("Chassis Power is on") has been stable for years, and `-E` takes
//     the password from the child's environment, which only its owner can read
//     in /proc, where a `-P` argument would show in ps. The cost is one process
//     per call (~40 ms), nothing next to a reboot; the pure-Go IPMI libraries
//     would add a dependency and their own RMCP+ bugs for that gain. Calls use
//     `-I lanplus -C 3` (cipher suite 3: RAKP-HMAC-SHA1, the one nearly every
//     BMC accepts; ipmitool's default 17 makes BMCs without it answer only
//     after ~10 s of retries) or `-I lan` (IPMI 1.5) when configured, and ask
//     for OPERATOR privilege, the least that chassis control needs.
//   - redfish: DMTF Redfish through gofish. Address is the service's URL
//     (https://10.0.0.5). It logs in with a session (falling back to HTTP basic
//     auth on services without a session service) and logs out after each call
//     so a fleet rebuild does not exhaust the BMC's few session slots.
//   - qmp: the lab's QEMU virtual machines. Address is the path of a QMP unix
//     socket that QEMU serves for this driver alone (QEMU answers one client
//     per QMP socket at a time).
//
// # Calls, timeouts and retries
//
// Every call is tried up to Config.Attempts times, each bounded by
// Config.Timeout, with a doubling pause in between. Only failures that may
// pass are retried: no answer at all, or a BMC saying it is busy. Once the
// attempts are spent, a call that never got an answer returns an error
// matching [ErrUnreachable] that names the driver and address; rejected
// credentials return [ErrAuth] at once, since retrying them can lock the
// account. A reset whose answer alone was lost may be retried and so restart a
// machine twice; a rebuild follows the machine's boot events and its stage
// timeouts catch the case where the second boot no longer PXE-boots.
//
// Passwords never reach a command line, an error or a log: [Credentials]
// redacts itself when printed or logged.
//
// Drivers hold no connection between calls and are safe for concurrent use.
package power
