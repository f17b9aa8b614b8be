package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

const whoAmI = `{ viewer { user { id } } }`

func TestLogOutRevokesOnlyThatToken(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		u := s.SignUp(t, "Ann")
		var login struct{ LogIn struct{ Token string } }
		s.OK(t, apitest.Request{Query: `mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }`,
			Vars: map[string]any{"e": u.Email, "p": apitest.Password}}, &login)
		second := &apitest.User{Token: login.LogIn.Token}

		s.OK(t, q(u, "", `mutation { logOut }`, nil), nil)
		wantCode(t, s.Do(t, q(u, "", whoAmI, nil)), "UNAUTHENTICATED")
		s.OK(t, q(second, "", whoAmI, nil), nil)
	})
}

func TestExpiredTokenIsRefused(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		u := s.SignUp(t, "Ann")
		s.OK(t, q(u, "", whoAmI, nil), nil)
		s.Clock.Advance(31 * 24 * time.Hour)
		wantCode(t, s.Do(t, q(u, "", whoAmI, nil)), "UNAUTHENTICATED")
		n, err := s.Auth.PurgeExpired(t.Context())
		if err != nil || n != 1 {
			t.Fatalf("purged %d tokens (%v), want 1", n, err)
		}
	})
}

func TestDisabledUserIsLockedOutAtOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		root, ann := s.SignUp(t, "Root"), s.SignUp(t, "Ann")
		s.MakeSuperAdmin(t, root)
		setDisabled := `mutation($id: ID!, $d: Boolean!) { adminSetUserDisabled(userID: $id, disabled: $d) { disabled } }`
		logIn := apitest.Request{Query: `mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }`,
			Vars: map[string]any{"e": ann.Email, "p": apitest.Password}}

		s.OK(t, q(root, "", setDisabled, map[string]any{"id": ann.ID, "d": true}), nil)
		r := s.Do(t, q(ann, "", whoAmI, nil))
		wantCode(t, r, "UNAUTHENTICATED")
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", r.Status)
		}
		denied := s.Do(t, logIn)
		wantCode(t, denied, "UNAUTHENTICATED")
		if !strings.Contains(denied.Errors[0].Message, "wrong e-mail or password") {
			t.Fatalf("a disabled account must look like bad credentials, got %q", denied.Errors[0].Message)
		}

		s.OK(t, q(root, "", setDisabled, map[string]any{"id": ann.ID, "d": false}), nil)
		s.OK(t, logIn, nil)
		s.OK(t, q(ann, "", whoAmI, nil), nil) // old tokens are valid again once re-enabled
		wantCode(t, s.Do(t, q(root, "", setDisabled, map[string]any{"id": root.ID, "d": true})), "BAD_USER_INPUT")
		wantCode(t, s.Do(t, q(root, "", setDisabled, map[string]any{"id": "usr_01m841t6g2bdyba5pqsncf9c50", "d": true})), "NOT_FOUND")
	})
}

func TestMalformedCredentials(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		for _, header := range []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer wst_forged", "Bearer something-else"} {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/query", strings.NewReader(`{"query":"{ viewer { isSuperAdmin } }"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%q: status %d, want 401", header, resp.StatusCode)
			}
		}
	})
}
