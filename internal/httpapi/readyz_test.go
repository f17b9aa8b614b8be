package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// /readyz is 503 while the event listener is down: that replica's subscribers would miss
// the others' events. (The database-down path is in health_test.go.)
func TestReadyzWithTheListenerDown(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Nothing listens on port 1: the listener never connects.
	bus := cluster.Listen("postgres://127.0.0.1:1/none?sslmode=disable&connect_timeout=1", log)
	ctx, cancel := context.WithCancel(context.Background())
	go bus.Run(ctx)
	t.Cleanup(func() { cancel(); bus.Wait() })

	h := readyz(Deps{SQL: db.SQL, Cluster: &cluster.Node{Bus: bus}, Log: log})
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "event listener disconnected\n" {
		t.Fatalf("/readyz: %d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	readyz(Deps{SQL: db.SQL, Log: log})(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/readyz without replicas: %d", rec.Code)
	}
}
