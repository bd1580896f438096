package records_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cafe/contracts/brokertest"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// Migration 5 moves the results' numbers into cafe_results: every answer
// of the read API is byte for byte what it was at version 4 (read then as
// before), each result has its row there, and the update that sets a
// result no longer touches an index (it is HOT where its page has room).
func TestMigration5KeepsEveryAnswer(t *testing.T) {
	db, s, evs := populatedV1(t)
	const n = 80
	ctx := context.Background()
	if err := s.MigrateTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	conn := recordstest.Conn(t, db)
	before := snapshot(t, s, conn, n)
	numbered := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands WHERE done_seq IS NOT NULL")
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := recordstest.Count(t, db, "SELECT max(version) FROM cafe_schema_version"); got != 5 {
		t.Fatalf("schema version %d, want 5", got)
	}
	sameAnswers(t, "after migration 5", before, snapshot(t, s, nil, n))
	if got := recordstest.Count(t, db, `SELECT count(*) FROM cafe_results r JOIN cafe_commands c USING (command_id)
		WHERE r.client_id = c.client_id AND r.done_seq = c.done_seq AND r.done_at = c.done_at`); got != numbered || numbered == 0 {
		t.Errorf("%d results in cafe_results matching their commands, want the %d numbered (and some)", got, numbered)
	}
	if got := recordstest.Count(t, db, `SELECT count(*) FROM pg_indexes WHERE tablename = 'cafe_commands' AND indexdef LIKE '%done_seq%'`); got != 0 {
		t.Errorf("%d indexes of cafe_commands still on done_seq, want none", got)
	}
	// Everything written again by the new statements changes nothing.
	writeAgain(t, s, evs)
	sameAnswers(t, "after the events were written again", before, snapshot(t, s, nil, n))
	if got := recordstest.Count(t, db, "SELECT count(*) FROM cafe_results"); got != numbered {
		t.Errorf("%d results after writing everything again, want %d: a second result got a row", got, numbered)
	}
}

// A command's result gets one row in cafe_results, whichever batch brings
// it and however often; the update that sets it is HOT; retention removes
// the row with its command.
func TestResultRowsFollowTheirCommands(t *testing.T) {
	db, s := migratedStore(t)
	ctx := context.Background()
	const n = 50
	old := time.Now().Add(-8 * 24 * time.Hour)
	evs := commands(n, allKinds, func(i int) time.Time {
		if i < 20 {
			return old
		}
		return time.Now()
	})
	for _, kind := range allKinds { // each kind in a batch of its own: an insert, then three updates
		var batch []records.Event
		for _, e := range evs {
			if e.Kind == kind {
				batch = append(batch, e)
			}
		}
		for range 2 { // and every batch twice
			if err := s.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := recordstest.Count(t, db, "SELECT count(*) FROM cafe_results"); got != n {
		t.Fatalf("%d rows in cafe_results, want %d", got, n)
	}
	res, err := s.Results(ctx, "app-1", 0, time.Time{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != n {
		t.Fatalf("%d results, want %d", len(res), n)
	}
	for i := 1; i < len(res); i++ {
		if res[i].Seq <= res[i-1].Seq {
			t.Fatalf("results out of order: %d after %d", res[i].Seq, res[i-1].Seq)
		}
	}
	s.Close() // its backends report their statistics as they end
	var upd, hot int
	brokertest.Eventually(t, 10*time.Second, "PostgreSQL's statistics show the updates", func() bool {
		upd = recordstest.Count(t, db, "SELECT n_tup_upd::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
		hot = recordstest.Count(t, db, "SELECT n_tup_hot_upd::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
		return upd > 0
	})
	// Three updates of each row and its four batches written again; the
	// two done batches alone were 2n updates none of them HOT before.
	if upd != 7*n || upd-hot >= 2*n {
		t.Errorf("%d updates, %d of them HOT; want %d, fewer than %d not HOT", upd, hot, 7*n, 2*n)
	}
	s = recordstest.Migrated(t, db)
	if _, err := s.DeleteBefore(ctx, time.Now().Add(-7*24*time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	if got := recordstest.Count(t, db, "SELECT count(*) FROM cafe_results r WHERE NOT EXISTS (SELECT 1 FROM cafe_commands c WHERE c.command_id = r.command_id)"); got != 0 {
		t.Errorf("%d results left of commands retention removed", got)
	}
	if got := recordstest.Count(t, db, "SELECT count(*) FROM cafe_results"); got != n-20 {
		t.Errorf("%d results left, want the %d recent", got, n-20)
	}
}

// Every read but Pending's (another change's) is an index scan by its key
// on tables as the ledger keeps them with autovacuum off (Tidy's
// statistics): GET /v1/results reads an app's results in the order of
// cafe_results's key, no sort, each command by its key.
func TestReadsUseTheirIndexes(t *testing.T) {
	srv := recordstest.NewServer(t, "autovacuum=off")
	db := srv.URL()
	w := recordstest.Migrated(t, db)
	ctx := context.Background()
	for c := range 4 {
		evs := commands(1000, allKinds, func(int) time.Time { return time.Now() })
		for i := range evs {
			evs[i].ClientID = fmt.Sprint("app-", c)
		}
		if err := w.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	w.Close() // its backends report their statistics as they end
	brokertest.Eventually(t, 10*time.Second, "PostgreSQL's statistics show the inserts", func() bool {
		return recordstest.Count(t, db, "SELECT n_tup_ins::int FROM pg_stat_user_tables WHERE relid = 'cafe_results'::regclass") == 4000
	})
	s := recordstest.Migrated(t, db)
	if ran, err := s.Tidy(ctx); err != nil || fmt.Sprint(ran) != "[ANALYZE cafe_commands ANALYZE cafe_results]" {
		t.Fatalf("Tidy ran %v (%v), want the analyses of two tables never analysed (and no dead rows)", ran, err)
	}
	conn := recordstest.Conn(t, db)
	for _, q := range []struct {
		name, sql string
		args      []any
		want      []string
	}{
		{"GET /v1/commands/{id}", records.CommandQuery, []any{"app-1", "500"}, []string{"cafe_commands_by_id"}},
		{"GET /v1/results?after=", records.ResultsAfter, []any{"app-1", int64(1500), 100}, []string{"cafe_results_pkey", "cafe_commands_pkey"}},
		{"GET /v1/results (a time)", records.ResultsSince, []any{"app-1", time.Now().Add(-time.Minute), 100}, []string{"cafe_results_pkey", "cafe_commands_pkey"}},
	} {
		rows, err := conn.Query(ctx, "EXPLAIN "+q.sql, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		for _, index := range q.want {
			if !strings.Contains(text, "Index Scan using "+index) && !strings.Contains(text, "Index Only Scan using "+index) {
				t.Errorf("%s: no index scan of %s:\n%s", q.name, index, text)
			}
		}
		// The command's query sorts the rows of one id token (a handful:
		// one per time the app sent it); the results' must not sort.
		if strings.Contains(text, "Seq Scan") || (q.sql != records.CommandQuery && strings.Contains(text, "Sort")) {
			t.Errorf("%s: a sequential scan or a sort:\n%s", q.name, text)
		}
	}
}

// Tidy vacuums the ledger's tables only where autovacuum is off (for the
// server, or for the table), and only once they hold enough dead rows;
// with autovacuum on it leaves them to it.
func TestTidyVacuumsOnlyWithoutAutovacuum(t *testing.T) {
	srv := recordstest.NewServer(t) // autovacuum on, as PostgreSQL ships
	ctx := context.Background()
	db := srv.URL()
	w := recordstest.Migrated(t, db)
	evs := commands(400, allKinds, func(int) time.Time { return time.Now() })
	for _, e := range evs { // one event a batch: three updates of each row, dead rows behind
		if err := w.Write(ctx, []records.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	dead := func() int {
		return recordstest.Count(t, db, "SELECT n_dead_tup::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
	}
	brokertest.Eventually(t, 10*time.Second, "PostgreSQL's statistics show the dead rows", func() bool { return dead() > 0 })
	s := recordstest.Migrated(t, db)
	if got, err := s.Tidy(ctx); err != nil || len(got) != 0 {
		t.Fatalf("with autovacuum on Tidy ran %v (%v), want nothing", got, err)
	}
	recordstest.Exec(t, db, "ALTER TABLE cafe_commands SET (autovacuum_enabled = false)")
	before := dead()
	got, err := s.Tidy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// autovacuum (on for the server) may have been there first.
	if before > 50 && fmt.Sprint(got) != "[VACUUM (ANALYZE) cafe_commands]" {
		t.Errorf("with the table's autovacuum off and %d dead rows Tidy ran %v, want [VACUUM (ANALYZE) cafe_commands]", before, got)
	}
	brokertest.Eventually(t, 10*time.Second, "the vacuum's counts", func() bool { return dead() == 0 })
	if got, err := s.Tidy(ctx); err != nil || len(got) != 0 {
		t.Errorf("right after a vacuum Tidy ran %v (%v), want nothing", got, err)
	}
}
