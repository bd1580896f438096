package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
)

// topologyCommand declares cafe's exchanges and queues as cafe-admin. The
// roles log in with least privilege and only check that the topology
// exists (a passive declare), so when they run on their own, without cafe
// up, this is how it comes to exist; declaring it again changes nothing.
func topologyCommand() *cobra.Command {
	var b cli.Brokers
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Declare cafe's exchanges and queues in RabbitMQ as cafe-admin (the roles only check they exist)",
		Long: `topology declares every exchange, quorum queue and binding of one pipeline
(--amqp-prefix) as cafe-admin, with the arguments the roles expect (delivery
limit, queue lengths). cafe up does this itself; run it once before starting
the roles on their own, and again after changing a limit (RabbitMQ refuses
to redeclare a queue with other arguments: delete it first). It is safe to
run while the pipeline runs.

The login: cafe-admin's, derived from this machine's auth key, unless
--amqp-url names a user (eval "$(cafe credentials admin)").`,
		Example: `  cafe topology
  cafe topology --amqp-prefix staging --amqp-url amqp://cafe-admin:PASSWORD@rabbit-1:5672/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			return declareTopology(cmd, b)
		},
	}
	b.RegisterAMQP(cli.On(cmd.Flags()))
	return cmd
}

func declareTopology(cmd *cobra.Command, b cli.Brokers) error {
	cfg := b.AMQP(identity.Admin, "cafe-topology")
	conn, err := amqplink.Dial(cfg)
	if err != nil {
		return fmt.Errorf("cannot reach RabbitMQ as %s (--amqp-url / CAFE_AMQP_URL; start it: bash deploy/brokers.sh): %w", identity.Admin, err)
	}
	defer conn.Close()
	if err := amqplink.Ensure(conn, cfg.Topology, false); err != nil {
		return fmt.Errorf("declare the topology %q as %s: %w", cfg.Topology.Prefix, identity.Admin, err)
	}
	out := cmd.OutOrStdout()
	for _, e := range cfg.Topology.Exchanges() {
		fmt.Fprintf(out, "exchange %s (%s)\n", e.Name, e.Kind)
	}
	for _, q := range cfg.Topology.Queues() {
		fmt.Fprintf(out, "queue    %s\n", q.Name)
	}
	return nil
}
