// Command cafe is the command line people use with cafe: run the whole
// pipeline on one machine (up), submit a command and wait for its result
// (order), manage the client registry (clients).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	root := &cobra.Command{
		Use:   "cafe",
		Short: "cafe: an asynchronous command pipeline for IoT devices",
		Long: `cafe takes device commands over HTTP (the cashier), has them carried out by
workers that talk to devices over MQTT (baristas), and delivers each result
to the app over MQTT (the caller). Apps never wait at the till: they get 202
at once and the result later, on clients/{clientID}/results.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(upCommand(), orderCommand(), clientsCommand(), devicesCommand(), deadCommand(), statusCommand(), benchCommand(), scaleCommand(), setupCommand(), credentialsCommand(), brokerAuthCommand(), tierCommand(), operatorsCommand(), consoleCommand(), topologyCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "cafe:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(2)
	}
}
