// Package rebuild rebuilds machines by rebooting them through their BMC into
// a network boot of their site's active config version, and rolls a new
// version out over a site's outdated machines under the site's rollout
// policy.
//
// # Rebuilds
//
// A rebuild is a persisted state machine (inventory.RebuildState):
//
//	requested -> power-cycling -> booting -> config-served -> booted -> done
//	any state before done -> failed (reason, last boot event seen)
//	requested -> canceled (its rollout stopped before the power cycle)
//	booting -> power-cycling (the boot stalled: at most MaxStallCycles times)
//
// power-cycling is stored before the BMC is called and booting (with the
// time the BMC accepted) after it accepted, so a server killed around the
// BMC call can tell whether the cycle happened: if the machine showed any
// boot step since, it did; otherwise the machine never booted and is cycled
// again, and so it is never rebuilt twice. From booting on, the engine
// follows the machine's boot events in the inventory; Advance, a pure
// function, decides each step. booted is transient: the engine records it
// and moves on to done in the same pass. It marks what the machine
// reported, done that the engine has finished with it, so that a later
// check between the two (a heartbeat, the node Ready) needs no new state.
//
// A machine that started booting and then shows no boot step for the
// policy's stall time (a firmware that gave up when its server restarted
// mid-fetch) is power-cycled again rather than left to the config timeout:
// Advance moves it back to power-cycling with a reason naming the attempt,
// the engine makes the BMC call, and the transition's event carries the
// reason.
//
// # Rollouts
//
// A rollout rebuilds a site's outdated machines (their last booted version
// is not the site's active one), or only those an operator selects (by
// labels, name and role, or by name; the others keep their version):
// masters first, one at a time, never more than floor((masters-1)/2) down,
// then workers in batches; canary machines first, then a soak time or an
// operator's confirmation; the policy's soak between later batches; halted
// after max_failures failures. Its plan is stored when it starts and Decide, a
// pure function, decides from the stored state what may start now, so a
// restarted server continues exactly where the last one stopped.
//
// # Storage
//
// The engine keeps nothing in memory that matters: every decision is made
// from the store and written back before the next action. The record types
// are the inventory's (inventory.Rebuild, inventory.Rollout), as
// inventory.Machine is, so *inventory.DB implements Store without an
// adapter; the engine declares the small interfaces it calls.
package rebuild
