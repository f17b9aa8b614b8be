// Package database opens wagate's database (PostgreSQL through lib/pq, or an embedded
// SQLite file), migrates its schema, and runs work in transactions.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/lib/pq"
	_ "modernc.org/sqlite" // pure-Go SQLite driver "sqlite"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/predicate"
	_ "github.com/wagate/wagate/ent/runtime" // registers the privacy policies and hooks
	"github.com/wagate/wagate/internal/viewer"
)

// DB is an open database.
type DB struct {
	// Client is the ent client; every query through it passes the privacy policies.
	Client *ent.Client
	// SQL is the underlying pool, shared with ent.
	SQL *sql.DB
	// Dialect is dialect.Postgres or dialect.SQLite.
	Dialect string
	// DSN is the database's address, for connections outside the pool (LISTEN).
	DSN string
}

// Options tune the connection pool.
type Options struct {
	// MaxOpenConns bounds the pool (PostgreSQL); 0 means 20.
	MaxOpenConns int
	// StatementCache is how many prepared statements each PostgreSQL connection keeps
	// (see stmtcache.go); 0 means 256, a negative number turns the cache off (for a
	// connection pooler in transaction mode, which cannot keep them).
	StatementCache int
	// WrapDriver, when set, wraps ent's driver (tests count queries with it).
	WrapDriver func(dialect.Driver) dialect.Driver
}

// SQLiteDSN returns the DSN of the embedded database under dir. Foreign keys are required by
// both ent and the WhatsApp store; WAL lets readers run beside the single writer; an
// immediate transaction lock and a busy timeout make concurrent writers wait instead of
// failing with SQLITE_BUSY.
func SQLiteDSN(dir string) string {
	return "file:" + filepath.ToSlash(filepath.Join(dir, "wagate.db")) +
		"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to dsn: a postgres:// URL, or a SQLite "file:" DSN (see SQLiteDSN).
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	driver, dia := "sqlite", dialect.SQLite
	if IsPostgres(dsn) {
		driver, dia = "postgres", dialect.Postgres
	} else if !strings.HasPrefix(dsn, "file:") {
		return nil, fmt.Errorf("unsupported database URL %q: want postgres://… or file:…", redact(dsn))
	}
	if dia == dialect.SQLite {
		dsn = withSQLitePragmas(dsn)
		if err := ensureDir(dsn); err != nil {
			return nil, err
		}
	}
	db, err := openPool(driver, dsn, opts)
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	if dia == dialect.Postgres {
		n := opts.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connecting to database %s: %w", redact(dsn), err)
	}
	var drv dialect.Driver = entsql.OpenDB(dia, db)
	if opts.WrapDriver != nil {
		drv = opts.WrapDriver(drv)
	}
	client := ent.NewClient(ent.Driver(drv))
	return &DB{Client: client, SQL: db, Dialect: dia, DSN: dsn}, nil
}

func openPool(driver, dsn string, opts Options) (*sql.DB, error) {
	if driver != "postgres" || opts.StatementCache < 0 {
		return sql.Open(driver, dsn)
	}
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	size := opts.StatementCache
	if size == 0 {
		size = 256
	}
	return sql.OpenDB(stmtCachingConnector{Connector: c, size: size}), nil
}

// withSQLitePragmas adds the settings wagate relies on to a SQLite DSN that lacks them:
// without foreign keys, deleting an organization would leave its rows (and keys) behind.
func withSQLitePragmas(dsn string) string {
	for _, p := range []struct{ key, param string }{
		{"foreign_keys", "_pragma=foreign_keys(1)"},
		{"busy_timeout", "_pragma=busy_timeout(10000)"},
		{"_txlock", "_txlock=immediate"},
	} {
		if strings.Contains(dsn, p.key) {
			continue
		}
		if strings.Contains(dsn, "?") {
			dsn += "&" + p.param
		} else {
			dsn += "?" + p.param
		}
	}
	return dsn
}

func ensureDir(dsn string) error {
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" || strings.HasPrefix(path, ":memory:") {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	return nil
}

// redact hides the password of a URL-style DSN in messages.
func redact(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return dsn
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":***@" + rest[at+1:]
}

// Close closes the client and the pool.
func (d *DB) Close() error { return d.Client.Close() }

// migrationLock is the advisory-lock key that serializes schema migration across replicas.
const migrationLock = 0x7761_6761_7465 // "wagate"

// Migrate brings the schema up to date, then runs the other migrations given (the WhatsApp
// store's). On PostgreSQL it holds an advisory lock meanwhile, so replicas starting together
// migrate one after the other.
func (d *DB) Migrate(ctx context.Context, more ...func(context.Context) error) error {
	if d.Dialect != dialect.Postgres {
		return d.migrate(ctx, more)
	}
	conn, err := d.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration lock connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("taking migration lock: %w", err)
	}
	// The unlock must run on the same connection, even if ctx is already cancelled.
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock)
	}()
	return d.migrate(ctx, more)
}

func (d *DB) migrate(ctx context.Context, more []func(context.Context) error) error {
	if err := d.Client.Schema.Create(ctx); err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	for _, m := range more {
		if err := m(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Client returns the transactional client in ctx (set by InTx or by the GraphQL layer for
// mutations), or fallback. Services use it so that all writes of one operation commit or
// roll back together, and so SQLite never waits on a lock its own request holds.
func Client(ctx context.Context, fallback *ent.Client) *ent.Client {
	if c := ent.FromContext(ctx); c != nil {
		return c
	}
	return fallback
}

// InTx runs fn in a transaction: the one already in ctx, or a new one that commits when fn
// returns nil and rolls back otherwise.
func InTx(ctx context.Context, client *ent.Client, fn func(ctx context.Context, tx *ent.Client) error) error {
	if tx := ent.TxFromContext(ctx); tx != nil {
		return fn(ctx, tx.Client())
	}
	tx, err := client.Tx(ctx)
	if err != nil {
		return fmt.Errorf("starting transaction: %w", err)
	}
	if err := fn(WithTx(ctx, tx), tx.Client()); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			return errors.Join(err, fmt.Errorf("rolling back: %w", rerr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		_ = tx.Rollback() // still open when work before the commit failed (BeforeCommit)
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// Outside returns ctx without its transaction, for work that must commit on its own: a
// request another replica has to see while the caller's transaction is still open.
func Outside(ctx context.Context) context.Context {
	return ent.NewContext(ent.NewTxContext(ctx, nil), nil)
}

// LockMessages takes the row locks of the messages a delete is about to cascade to, before
// the delete locks their session or organization. A session's runtime locks a message and
// then, logging the change, its session (through the event's foreign key); taking the locks
// in the same order keeps the two from deadlocking on PostgreSQL. SQLite serializes writers.
// (A group commit of several events can still lock a session for one event before it locks
// a message for the next; PostgreSQL breaks such a deadlock, and a batch whose event lost
// runs that event again — see GroupCommitter.)
func LockMessages(ctx context.Context, c *ent.Client, which predicate.Message) error {
	err := c.Message.Update().Where(which).SetUpdatedAt(time.Now()).Exec(viewer.System(ctx, "lock-messages"))
	if err != nil {
		return fmt.Errorf("locking messages: %w", err)
	}
	return nil
}
