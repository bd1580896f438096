// Package run wires cafe's roles to their brokers, for the binaries that
// run them: cmd/cashier, cmd/barista and cmd/caller each run one role, and
// `cafe up` runs all three in one process, each through the same Pipeline.
//
// Each role's settings (flags and CAFE_* variables) are registered here
// from the role package's own Settings and Defaults, so every binary names
// them alike and no default is written twice.
//
// A role owns its broker links. Its Run stops the role first (the cashier
// drains HTTP, the barista and caller finish or hand back what they hold)
// and only then closes the links, so nothing in flight loses its broker.
package run
