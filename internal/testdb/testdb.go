// Package testdb gives tests real databases: a fresh SQLite file, and a fresh PostgreSQL
// database when a server is reachable. With CI=true PostgreSQL is required: a missing server
// fails the test instead of skipping it.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/lib/pq" // PostgreSQL driver

	"github.com/wagate/wagate/internal/database"
)

// DefaultPostgresURL is used when TEST_DATABASE_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Dialects are the databases every storage test runs on.
var Dialects = []string{"sqlite", "postgres"}

// Each runs fn as a subtest on a fresh, migrated database of every dialect.
func Each(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(d, func(t *testing.T) { fn(t, Open(t, d, database.Options{})) })
	}
}

// Open returns a fresh, migrated database of the given dialect, removed when t ends.
func Open(t testing.TB, dialect string, opts database.Options) *database.DB {
	t.Helper()
	var dsn string
	switch dialect {
	case "sqlite":
		dsn = database.SQLiteDSN(t.TempDir())
	case "postgres":
		dsn = newPostgresDB(t)
	default:
		t.Fatalf("unknown dialect %q", dialect)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := database.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("opening %s: %v", dialect, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrating %s: %v", dialect, err)
	}
	return db
}

// PostgresURL returns the admin URL of the test server.
func PostgresURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// newPostgresDB creates a database for this test and returns its URL.
func newPostgresDB(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("postgres", PostgresURL())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI but unreachable at %s: %v", PostgresURL(), err)
		}
		t.Skipf("PostgreSQL unreachable (%v); set TEST_DATABASE_URL to run these tests", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "wagate_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(PostgresURL())
	if err != nil {
		t.Fatalf("parsing %s: %v", PostgresURL(), err)
	}
	u.Path = "/" + name
	return u.String()
}

// Must fails t on err.
func Must(t testing.TB, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}
