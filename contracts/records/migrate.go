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
	// 3: a command's history moves into its row (history: event id →
	// [kind, at in µs since 1970, outcome if any]), so an event costs no
	// row and no index entries of its own; cafe_events becomes a view of
	// the same columns, for whoever still reads it.
	`ALTER TABLE cafe_commands ADD COLUMN history jsonb NOT NULL DEFAULT '{}';
	UPDATE cafe_commands c SET history = h.history
		FROM (SELECT command_id, jsonb_object_agg(event_id, CASE WHEN outcome IS NULL
				THEN jsonb_build_array(kind, (extract(epoch FROM at) * 1000000)::bigint)
				ELSE jsonb_build_array(kind, (extract(epoch FROM at) * 1000000)::bigint, outcome) END) AS history
			FROM cafe_events GROUP BY command_id) h
		WHERE c.command_id = h.command_id;
	DROP TABLE cafe_events;
	CREATE VIEW cafe_events AS
		SELECT e.key AS event_id, c.command_id, e.value->>0 AS kind,
			timestamptz 'epoch' + (e.value->>1)::bigint * interval '1 microsecond' AS at, e.value->>2 AS outcome
		FROM cafe_commands c, jsonb_each(c.history) e;`,
	// 4: retention counts from when a command was first recorded
	// (recorded_at, never updated) instead of its last event (updated_at,
	// no longer indexed), and pages keep a fifth free: an update that sets
	// no result changes no indexed column, so it can be HOT (no index
	// entries, less WAL). A command recorded before keeps its retention.
	`ALTER TABLE cafe_commands ADD COLUMN recorded_at timestamptz;
	UPDATE cafe_commands SET recorded_at = updated_at;
	ALTER TABLE cafe_commands ALTER COLUMN recorded_at SET NOT NULL;
	DROP INDEX cafe_commands_by_age;
	CREATE INDEX cafe_commands_by_age ON cafe_commands (recorded_at);
	ALTER TABLE cafe_commands SET (fillfactor = 80);`,
	// 5: results are numbered in a table of their own (insert-only: a
	// row and one index entry per result), so the update of a command's
	// row that sets its result changes no indexed column either and can
	// be HOT; before, setting done_seq (indexed twice: unique, and
	// cafe_commands_by_done for GET /v1/results) made it a new row
	// version with an entry in each of the row's five indexes and a dead
	// row with dead entries left behind. The primary key is what the
	// cursor needs: an app's numbers are unique and in order. A command's
	// row about doubles over its life (its result, three more steps):
	// inserted into pages half full, its later versions fit beside it
	// (HOT) where a fifth free did not (61 % of the updates were HOT at
	// fillfactor 80, 82 % at 50, 88 % at 40: BenchmarkWrite/pipeline).
	// ANALYZE (Store.Tidy, where autovacuum is off) skips the wide
	// columns: their statistics were most of its cost and serve no plan.
	`CREATE TABLE cafe_results (
		client_id  text NOT NULL,
		done_seq   bigint NOT NULL,
		command_id text NOT NULL,
		done_at    timestamptz NOT NULL,
		PRIMARY KEY (client_id, done_seq)
	);
	INSERT INTO cafe_results SELECT client_id, done_seq, command_id, done_at FROM cafe_commands WHERE done_seq IS NOT NULL;
	DROP INDEX cafe_commands_by_done;
	ALTER TABLE cafe_commands DROP CONSTRAINT cafe_commands_done_seq_key;
	ALTER TABLE cafe_commands SET (fillfactor = 50);
	ALTER TABLE cafe_commands ALTER COLUMN history SET STATISTICS 0, ALTER COLUMN result SET STATISTICS 0;`,
}

// migrateLock serialises ledgers migrating one database at once.
const migrateLock = 0x6361666501 // "cafe" 1

// Migrate brings the schema up to date.
func (s *Store) Migrate(ctx context.Context) error { return s.migrateTo(ctx, len(migrations)) }

// migrateTo runs the migrations up to version (tests stop at an older one).
func (s *Store) migrateTo(ctx context.Context, version int) error {
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
	var done int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM cafe_schema_version").Scan(&done); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for i := done; i < version; i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO cafe_schema_version VALUES ($1)", i+1); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return tx.Commit(ctx)
}
