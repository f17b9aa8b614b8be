package testdb

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"entgo.io/ent/dialect"

	"github.com/wagate/wagate/internal/database"
)

// Recorder remembers the statements an ent driver runs, those of its transactions included
// (with BEGIN and COMMIT), for tests that count them.
type Recorder struct {
	// Keep, when set, leaves out the statements it returns false for (by their context).
	Keep  func(ctx context.Context) bool
	mu    sync.Mutex
	stmts []string
}

// OpenRecorded is Open for a database whose statements rec records.
func OpenRecorded(t testing.TB, dialectName string, rec *Recorder) *database.DB {
	return Open(t, dialectName, database.Options{WrapDriver: func(drv dialect.Driver) dialect.Driver {
		return recordingDriver{Driver: drv, recording: recording{eq: drv.(connection), r: rec}}
	}})
}

// Reset returns the statements recorded since the last Reset, and forgets them.
func (r *Recorder) Reset() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.stmts
	r.stmts = nil
	return out
}

func (r *Recorder) record(ctx context.Context, q string) {
	if r.Keep != nil && !r.Keep(ctx) {
		return
	}
	r.mu.Lock()
	r.stmts = append(r.stmts, q)
	r.mu.Unlock()
}

// connection is what ent's SQL driver and its transactions offer.
type connection interface {
	dialect.ExecQuerier
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// recording records what one connection runs: the driver itself, or a transaction.
type recording struct {
	eq connection
	r  *Recorder
}

func (c recording) Query(ctx context.Context, query string, args, v any) error {
	c.r.record(ctx, query)
	return c.eq.Query(ctx, query, args, v)
}

func (c recording) Exec(ctx context.Context, query string, args, v any) error {
	c.r.record(ctx, query)
	return c.eq.Exec(ctx, query, args, v)
}

func (c recording) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	c.r.record(ctx, q)
	return c.eq.ExecContext(ctx, q, args...)
}

func (c recording) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.r.record(ctx, q)
	return c.eq.QueryContext(ctx, q, args...)
}

// recordingDriver has the recording methods on the driver itself: ent.Client's ExecContext
// and QueryContext need them there.
type recordingDriver struct {
	dialect.Driver
	recording
}

func (d recordingDriver) Query(ctx context.Context, query string, args, v any) error {
	return d.recording.Query(ctx, query, args, v)
}

func (d recordingDriver) Exec(ctx context.Context, query string, args, v any) error {
	return d.recording.Exec(ctx, query, args, v)
}

func (d recordingDriver) Tx(ctx context.Context) (dialect.Tx, error) {
	tx, err := d.Driver.Tx(ctx)
	if err != nil {
		return nil, err
	}
	d.r.record(ctx, "BEGIN")
	return &recordingTx{recording: recording{eq: tx.(connection), r: d.r}, tx: tx, ctx: ctx}, nil
}

type recordingTx struct {
	recording
	tx  dialect.Tx
	ctx context.Context
}

func (t *recordingTx) Commit() error {
	t.r.record(t.ctx, "COMMIT")
	return t.tx.Commit()
}

func (t *recordingTx) Rollback() error { return t.tx.Rollback() }
