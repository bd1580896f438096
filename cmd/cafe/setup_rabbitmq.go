package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"cafe/contracts/identity"
)

// amqpGrant is what one role may do on RabbitMQ's vhost "/": the three
// permission regexes (configure, write, read) over exchange and queue
// names, and its tags. Topology names are {prefix}.commands and so on, for
// any prefix; the roles only passive-declare (which needs no permission),
// cafe-admin declares the topology.
type amqpGrant struct {
	role                   identity.Service
	configure, write, read string
	tags                   string
}

// nothing matches no name.
const nothing = "^$"

// AMQPGrants are the RabbitMQ users and what each may do:
//
//	cashier  publishes commands, and status notices on the results exchange
//	barista  consumes commands, publishes results and "sent" events
//	caller   consumes results and dead-letter notices, publishes "delivered" events
//	ledger   consumes the event copies
//	ops      reads and purges dead letters, republishes them (in its own
//	         name: baristas and the caller accept cafe-ops as a publisher,
//	         see identity.CommandPublishers), and runs the bench's private
//	         floor queues; tagged monitoring, so `cafe scale` and `cafe status`
//	         read queue figures from the management API
//	admin    everything (declares the topology; tests)
var AMQPGrants = []amqpGrant{
	{identity.Cashier, nothing, `^.+\.(commands|results)$`, nothing, ""},
	{identity.Barista, nothing, `^.+\.(results|events)$`, `^.+\.commands$`, ""},
	{identity.Caller, nothing, `^.+\.events$`, `^.+\.(results|dead\.notify)$`, ""},
	{identity.Ledger, nothing, nothing, `^.+\.events$`, ""},
	{identity.Ops, `^bench-floor-.+$`, `^(.+\.(commands|results)|bench-floor-.+)$`, `^(.+\.dead|bench-floor-.+)$`, "monitoring"},
	{identity.Admin, ".*", ".*", ".*", "administrator"},
}

// rabbitmqNode is the rabbitmqctl of one node: name (rabbitmqctl -n), or
// the local default node when name is empty.
type rabbitmqNode string

// appliedMarker is the file that remembers what was applied to node (one
// per node or cluster: a cluster's users are not the default node's). The
// node's name is checked first (setupSettings.run: no path separator).
func appliedMarker(node string) string {
	if node == "" {
		return "rabbitmq.applied"
	}
	return "rabbitmq-" + node + ".applied"
}

// setupRabbitMQ makes RabbitMQ's users as AMQPGrants says, with passwords
// derived from key, and removes the guest user, so nothing relies on it.
// rabbitmqctl takes about half a second a call, so what was applied is
// remembered in marker (a hash of it): when nothing changed, one call
// (list_users) checks that the users are still there.
func setupRabbitMQ(out io.Writer, key identity.Key, rabbitmqctl rabbitmqNode, marker string) error {
	users, err := rabbitmqctl.run("list_users", "--quiet")
	if err != nil {
		return err
	}
	want := grantsHash(key)
	if old, err := os.ReadFile(marker); err == nil && string(old) == want && allListed(users) {
		return nil
	}
	if err := applyGrants(out, key, rabbitmqctl, users); err != nil {
		return err
	}
	return os.WriteFile(marker, []byte(want), 0o600)
}

func grantsHash(key identity.Key) string {
	h := sha256.New()
	for _, g := range AMQPGrants {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\n", g.role, key.ServicePassword(g.role), g.configure, g.write, g.read, g.tags)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func allListed(users string) bool {
	have := listed(users)
	for _, g := range AMQPGrants {
		if !have[string(g.role)] {
			return false
		}
	}
	return !have["guest"]
}

func listed(users string) map[string]bool {
	have := map[string]bool{}
	for _, line := range strings.Split(users, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			have[f[0]] = true
		}
	}
	return have
}

func applyGrants(out io.Writer, key identity.Key, rabbitmqctl rabbitmqNode, users string) error {
	have := listed(users)
	for _, g := range AMQPGrants {
		name, pw := string(g.role), key.ServicePassword(g.role)
		if !have[name] {
			if _, err := rabbitmqctl.run(userArgs("add_user", name, pw)...); err != nil {
				return err
			}
			fmt.Fprintf(out, "setup: RabbitMQ user %s created\n", name)
		} else if _, err := rabbitmqctl.run(userArgs("authenticate_user", name, pw)...); err != nil {
			if _, err := rabbitmqctl.run(userArgs("change_password", name, pw)...); err != nil {
				return err
			}
		}
		if _, err := rabbitmqctl.run("set_permissions", "-p", "/", name, g.configure, g.write, g.read); err != nil {
			return err
		}
		if _, err := rabbitmqctl.run("set_user_tags", name, g.tags); err != nil {
			return err
		}
	}
	if have["guest"] {
		if _, err := rabbitmqctl.run("delete_user", "guest"); err != nil {
			return err
		}
		fmt.Fprintln(out, "setup: RabbitMQ user guest removed (cafe's roles have users of their own)")
	}
	return nil
}

// userArgs are rabbitmqctl's arguments for a command that takes a user
// and a password. The derived passwords are base64url, so about one in 64
// starts with "-", which rabbitmqctl would read as options and refuse the
// command ("Invalid options for this command"): "--" ends the options.
func userArgs(command, name, password string) []string {
	return []string{command, "--", name, password}
}

func (node rabbitmqNode) run(args ...string) (string, error) {
	all := args
	if node != "" {
		all = append([]string{"-n", string(node)}, args...)
	}
	out, err := exec.Command("rabbitmqctl", all...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
