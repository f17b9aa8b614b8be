package database

import (
	"context"
	"path/filepath"
	"testing"
)

func TestSQLitePragmasAreEnforced(t *testing.T) {
	for dsn, want := range map[string]string{
		"file:/x.db":                         "file:/x.db?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_txlock=immediate",
		"file:/x.db?_pragma=foreign_keys(1)": "file:/x.db?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_txlock=immediate",
		SQLiteDSN("/d"):                      SQLiteDSN("/d"),
	} {
		if got := withSQLitePragmas(dsn); got != want {
			t.Errorf("withSQLitePragmas(%q) = %q, want %q", dsn, got, want)
		}
	}
	db, err := Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "plain.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var on int
	if err := db.SQL.QueryRow("PRAGMA foreign_keys").Scan(&on); err != nil || on != 1 {
		t.Fatalf("foreign_keys = %d (%v)", on, err)
	}
}

func TestOpenRejectsUnknownURLs(t *testing.T) {
	for _, dsn := range []string{"mysql://x", "/tmp/x.db", ""} {
		if _, err := Open(context.Background(), dsn, Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
	if got := redact("postgres://u:secret@h/db"); got != "postgres://u:***@h/db" {
		t.Errorf("redact = %q", got)
	}
}

func TestMigrateRunsTheOtherMigrations(t *testing.T) {
	db, err := Open(context.Background(), SQLiteDSN(t.TempDir()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ran := 0
	step := func(context.Context) error { ran++; return nil }
	if err := db.Migrate(context.Background(), step, step); err != nil || ran != 2 {
		t.Fatalf("Migrate: %v, %d steps ran", err, ran)
	}
	failing := func(context.Context) error { return context.DeadlineExceeded }
	if err := db.Migrate(context.Background(), failing); err == nil {
		t.Fatal("a failing migration step was ignored")
	}
}
