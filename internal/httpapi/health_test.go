package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

func TestHealthAndGraphiQL(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	s := apitest.New(t, db)
	get := func(path string) (int, string) {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, "graphiql") {
		t.Fatalf("/: %d, no GraphiQL", code)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Fatalf("/nope: %d", code)
	}
	// A GET query works too.
	if code, body := get(`/query?query={viewer{isSuperAdmin}}`); code != 200 || !strings.Contains(body, `"isSuperAdmin":false`) {
		t.Fatalf("GET /query: %d %s", code, body)
	}
	db.SQL.Close()
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("/readyz with the database gone: %d, want 503", code)
	}
}
