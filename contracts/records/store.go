package records

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"cafe/contracts"
)

// DefaultURL is where the ledger's database is unless told.
const DefaultURL = "postgres://127.0.0.1:5432/cafe?sslmode=disable"

// SettingURL is the database, for the ledger (writes) and the cashier (reads).
var SettingURL = contracts.Setting{Flag: "postgres-url", Env: "CAFE_POSTGRES_URL"}

// Store is a pool of connections to the ledger's database.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to rawURL (lazily: the pool dials when first used, so a
// service starts with PostgreSQL down). readOnly makes every transaction
// read-only, whatever the role may do: the cashier's.
func Open(rawURL string, readOnly bool, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, SettingURL.Errorf("%s: %v", contracts.RedactURL(rawURL), err)
	}
	if readOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, SettingURL.Errorf("%s: %v", contracts.RedactURL(rawURL), err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, func(c *pgxpool.Conn) error { return c.Ping(ctx) })
}

// do runs f on a connection of the pool. A pooled connection the server
// ended since it was last used (PostgreSQL restarted: its sessions got
// FATAL 57P01, or died with it) fails only when next used, and the pool
// pings only connections idle for over a second; so when f's connection
// turns out dead (pgx closes a connection on such an error, never on an
// SQL error), every pooled connection is dropped (they are of the same
// server, dead too) and f runs once more, on a fresh one. f must be safe
// to run twice: the reads are, and so is Write (a batch that committed
// before its connection died changes nothing when written again).
func (s *Store) do(ctx context.Context, f func(*pgxpool.Conn) error) error {
	for retried := false; ; retried = true {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		err = f(c)
		dead := err != nil && c.Conn().IsClosed()
		c.Release()
		if !dead || retried || ctx.Err() != nil {
			return err
		}
		s.pool.Reset()
	}
}

// CreateDatabase creates the database rawURL names if it does not exist,
// connecting to the server's "postgres" database to do so.
func CreateDatabase(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return SettingURL.Errorf("%s: %v", contracts.RedactURL(rawURL), err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	admin := *u
	admin.Path = "/postgres"
	q := admin.Query()
	q.Del("search_path")
	admin.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil || exists {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P04" { // created meanwhile by another ledger
		return nil
	}
	return err
}
