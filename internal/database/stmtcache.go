package database

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/lib/pq"
)

// lib/pq runs a statement with parameters in two round trips (Parse+Describe, then
// Bind+Execute) and PostgreSQL parses and plans it every time. A statement prepared once
// per connection runs in one round trip and is planned from its cached plan: ingest runs
// about ten such statements per message, so this halves its round trips. Statements
// without parameters keep lib/pq's simple protocol, which is already one round trip (and
// may hold several commands, which a prepared statement cannot).

// maxCachedParams keeps statements with long, varying IN lists or bulk VALUES out of the
// cache: each length is a distinct text, so caching them would only churn it.
const maxCachedParams = 100

// pqConn is what lib/pq's connection implements and database/sql looks for.
type pqConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

type pqStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// stmtCachingConnector hands out lib/pq connections that keep up to size prepared
// statements each, least recently used first out.
type stmtCachingConnector struct {
	driver.Connector
	size int
}

func (c stmtCachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	pc, ok := cn.(pqConn)
	if !ok {
		_ = cn.Close()
		return nil, fmt.Errorf("statement cache: driver connection %T lacks the methods lib/pq provides", cn)
	}
	return &cachingConn{pqConn: pc, size: c.size, stmts: map[string]*list.Element{}, lru: list.New()}, nil
}

// cachingConn is used by one goroutine at a time (database/sql's contract), so the cache
// needs no lock.
type cachingConn struct {
	pqConn
	size  int
	stmts map[string]*list.Element // query → element of lru holding a *cachedStmt
	lru   *list.List               // front = most recently used
	inTx  bool
}

type cachedStmt struct {
	query string
	stmt  pqStmt
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if !cacheable(args) {
		return c.pqConn.ExecContext(ctx, query, args)
	}
	var res driver.Result
	err := c.run(ctx, query, func(st pqStmt) (err error) {
		res, err = st.ExecContext(ctx, args)
		return err
	})
	return res, err
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if !cacheable(args) {
		return c.pqConn.QueryContext(ctx, query, args)
	}
	var rows driver.Rows
	err := c.run(ctx, query, func(st pqStmt) (err error) {
		rows, err = st.QueryContext(ctx, args)
		return err
	})
	return rows, err
}

func cacheable(args []driver.NamedValue) bool { return len(args) > 0 && len(args) <= maxCachedParams }

// run executes query's prepared statement. A statement the server no longer knows, or
// whose cached plan no longer fits the table (a concurrent migration by another replica),
// is dropped from the cache; outside a transaction it is prepared again and retried once
// (inside one, the failure has aborted the transaction, and the caller's retry starts a
// new one).
func (c *cachingConn) run(ctx context.Context, query string, do func(pqStmt) error) error {
	st, err := c.prepared(ctx, query)
	if err != nil {
		return err
	}
	err = do(st)
	if err == nil || !staleStatement(err) {
		return err
	}
	c.evict(query)
	if c.inTx {
		return err
	}
	if st, err = c.prepared(ctx, query); err != nil {
		return err
	}
	return do(st)
}

func (c *cachingConn) prepared(ctx context.Context, query string) (pqStmt, error) {
	if e, ok := c.stmts[query]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cachedStmt).stmt, nil
	}
	s, err := c.pqConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	st, ok := s.(pqStmt)
	if !ok {
		_ = s.Close()
		return nil, fmt.Errorf("statement cache: driver statement %T lacks the context methods", s)
	}
	c.stmts[query] = c.lru.PushFront(&cachedStmt{query: query, stmt: st})
	for c.lru.Len() > c.size {
		c.evict(c.lru.Back().Value.(*cachedStmt).query)
	}
	return st, nil
}

// evict closes the statement on the server. A failure to close leaves it to the
// connection's end; if the connection itself broke, lib/pq has marked it bad and
// database/sql discards it.
func (c *cachingConn) evict(query string) {
	e, ok := c.stmts[query]
	if !ok {
		return
	}
	delete(c.stmts, query)
	c.lru.Remove(e)
	_ = e.Value.(*cachedStmt).stmt.Close()
}

// staleStatement reports errors after which a cached statement must be prepared anew:
// "prepared statement does not exist" (DISCARD ALL, a pooler between us and the server)
// and "cached plan must not change result type" (the table changed under the plan).
func staleStatement(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "26000" || pe.Code == "0A000"
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.pqConn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return cachingTx{Tx: tx, conn: c}, nil
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

type cachingTx struct {
	driver.Tx
	conn *cachingConn
}

func (t cachingTx) Commit() error {
	t.conn.inTx = false
	return t.Tx.Commit()
}

func (t cachingTx) Rollback() error {
	t.conn.inTx = false
	return t.Tx.Rollback()
}

// Close closes the connection; the server drops its prepared statements with it.
func (c *cachingConn) Close() error {
	c.stmts, c.lru = nil, nil
	return c.pqConn.Close()
}
