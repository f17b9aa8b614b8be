package database_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// prepared lists the statements the connection's server session has prepared, with how
// many times each was planned (once per execution).
func prepared(t *testing.T, c *sql.Conn) map[string]int64 {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), `SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements`)
	testdb.Must(t, err, "listing prepared statements")
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var stmt string
		var n int64
		testdb.Must(t, rows.Scan(&stmt, &n), "scanning")
		out[stmt] = n
	}
	testdb.Must(t, rows.Err(), "listing prepared statements")
	return out
}

func pinned(t *testing.T, db *database.DB) *sql.Conn {
	t.Helper()
	c, err := db.SQL.Conn(context.Background())
	testdb.Must(t, err, "taking a connection")
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func scanInt(t *testing.T, c *sql.Conn, q string, args ...any) int {
	t.Helper()
	var n int
	testdb.Must(t, c.QueryRowContext(context.Background(), q, args...).Scan(&n), "%s", q)
	return n
}

func TestStatementsWithParametersArePreparedOncePerConnection(t *testing.T) {
	ctx := context.Background()
	const q = `SELECT $1::int + 1`
	t.Run("cached", func(t *testing.T) {
		c := pinned(t, testdb.Open(t, "postgres", database.Options{}))
		for i := range 3 {
			if got := scanInt(t, c, q, i); got != i+1 {
				t.Fatalf("%s with %d = %d", q, i, got)
			}
		}
		_, err := c.ExecContext(ctx, `SELECT pg_notify($1, $2)`, "nobody", "x")
		testdb.Must(t, err, "exec")
		got := prepared(t, c)
		if got[q] != 3 || got[`SELECT pg_notify($1, $2)`] != 1 {
			t.Fatalf("prepared statements and their executions = %v, want %q three times and the notify once", got, q)
		}
	})
	t.Run("off", func(t *testing.T) {
		c := pinned(t, testdb.Open(t, "postgres", database.Options{StatementCache: -1}))
		scanInt(t, c, q, 1)
		if got := prepared(t, c); len(got) != 0 {
			t.Fatalf("with the cache off, prepared = %v", got)
		}
	})
	t.Run("least recently used out", func(t *testing.T) {
		c := pinned(t, testdb.Open(t, "postgres", database.Options{StatementCache: 2}))
		scanInt(t, c, `SELECT $1::int`, 1)
		scanInt(t, c, `SELECT $1::int + 2`, 1)
		scanInt(t, c, `SELECT $1::int`, 1) // now the most recent
		scanInt(t, c, `SELECT $1::int + 3`, 1)
		got := prepared(t, c)
		if _, ok := got[`SELECT $1::int + 2`]; ok || len(got) != 2 || got[`SELECT $1::int`] != 2 {
			t.Fatalf("prepared = %v, want the two most recently used", got)
		}
	})
}

// A statement the server forgot (DISCARD ALL by a pooler) or whose plan no longer fits its
// table is prepared again: outside a transaction at once, inside one from the next use.
func TestStaleStatementsArePreparedAgain(t *testing.T) {
	ctx := context.Background()
	db := testdb.Open(t, "postgres", database.Options{})
	c := pinned(t, db)
	scanInt(t, c, `SELECT $1::int`, 1)
	_, err := c.ExecContext(ctx, `DEALLOCATE ALL`)
	testdb.Must(t, err, "deallocating")
	if got := scanInt(t, c, `SELECT $1::int`, 7); got != 7 {
		t.Fatalf("after DEALLOCATE ALL: %d", got)
	}

	_, err = c.ExecContext(ctx, `CREATE TABLE widen (a int)`)
	testdb.Must(t, err, "creating a table")
	_, err = c.ExecContext(ctx, `INSERT INTO widen VALUES ($1)`, 1)
	testdb.Must(t, err, "inserting")
	const all = `SELECT * FROM widen WHERE a = $1`
	cols := func() int {
		rows, err := c.QueryContext(ctx, all, 1)
		if err != nil {
			t.Fatalf("%s: %v", all, err)
		}
		defer rows.Close()
		names, _ := rows.Columns()
		return len(names)
	}
	if n := cols(); n != 1 {
		t.Fatalf("columns = %d", n)
	}
	_, err = c.ExecContext(ctx, `ALTER TABLE widen ADD COLUMN b int`)
	testdb.Must(t, err, "altering")
	if n := cols(); n != 2 {
		t.Fatalf("after ALTER TABLE: columns = %d, want 2", n)
	}

	_, err = c.ExecContext(ctx, `ALTER TABLE widen ADD COLUMN c int`)
	testdb.Must(t, err, "altering")
	tx, err := c.BeginTx(ctx, nil)
	testdb.Must(t, err, "beginning")
	if _, err := tx.QueryContext(ctx, all, 1); err == nil {
		t.Fatal("a stale plan inside a transaction succeeded: it cannot, the transaction is aborted")
	}
	testdb.Must(t, tx.Rollback(), "rolling back")
	if n := cols(); n != 3 {
		t.Fatalf("after the rollback: columns = %d, want 3", n)
	}
}
