package records

import (
	"context"
	"fmt"
)

// migrations, in order; each runs once, in a transaction, and is recorded
// in cafe_schema_version. Append, never edit.
var migrations = []string{
	`CREATE SEQUENCE cafe_done_seq;
	CREATE TABLE cafe_commands (
		command_id  text PRIMARY KEY,
		client_id   text NOT NULL,
		device_id   text NOT NULL,
		msg_id      text NOT NULL,
		status      smallint NOT NULL,
		accepted_at timestamptz,
		updated_at  timestamptz NOT NULL,
		outcome     text,
		result      bytea,
		done_at     timestamptz,
		done_seq    bigint UNIQUE
	);
	CREATE INDEX cafe_commands_by_id ON cafe_commands (client_id, msg_id, accepted_at);
	CREATE INDEX cafe_commands_by_done ON cafe_commands (client_id, done_seq) WHERE done_seq IS NOT NULL;
	CREATE INDEX cafe_commands_by_age ON cafe_commands (updated_at);
	CREATE TABLE cafe_events (
		event_id   text PRIMARY KEY,
		command_id text NOT NULL,
		kind       text NOT NULL,
		at         timestamptz NOT NULL,
		outcome    text
	);
	CREATE INDEX cafe_events_by_command ON cafe_events (command_id, at);
	CREATE INDEX cafe_events_by_age ON cafe_events (at);`,
	// When RabbitMQ refused the command (the cashier's refused event): a
	// command refused and never sent is not pending. A column of its own,
	// not a status, because a refusal does not outrank a later step
	// (see StatusRefused). Adding a nullable column rewrites nothing.
	`ALTER TABLE cafe_commands ADD COLUMN refused_at timestamptz;`,
}

// migrateLock serialises ledgers migrating one database at once.
const migrateLock = 0x6361666501 // "cafe" 1

// Migrate brings the schema up to date.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS cafe_schema_version (version int NOT NULL)"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM cafe_schema_version").Scan(&version); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO cafe_schema_version VALUES ($1)", i+1); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return tx.Commit(ctx)
}
