// Command ledger runs one of cafe's ledgers: it consumes the events queue
// and keeps every command's status history and result in PostgreSQL.
// See package cafe/caller/ledger.
package main

import "cafe/cmd/internal/run"

func main() { run.Main(run.LedgerCommand()) }
