package webhook

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks libraries' published test vector.
func TestSignMatchesTheSpecificationsVector(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestSecretsAreStandardAndRoundTrip(t *testing.T) {
	key := newSecret()
	s := FormatSecret(key)
	if !strings.HasPrefix(s, "whsec_") || len(key) < 24 {
		t.Fatalf("secret %q", s)
	}
	back, err := ParseSecret(s)
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("ParseSecret: %v", err)
	}
}

// An independent implementation: the standardwebhooks npm package verifies what the worker
// signs, with one secret and with both secrets of a rotation. It runs where Node.js is
// installed, and must run in CI.
func TestSignaturesVerifyWithTheReferenceLibrary(t *testing.T) {
	node, err := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if err != nil || npmErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI needs node and npm to verify webhook signatures with the standardwebhooks package")
		}
		t.Skip("node/npm not installed")
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "verify"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--silent")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	oldKey, newKey := newSecret(), newSecret()
	body := []byte(`{"id":"evt_01jf3k2v8q9m7x0c4d5e6f7g8h","type":"MESSAGE_RECEIVED","data":{"text":"héllo \"quoted\""}}`)
	id, now := "evt_01jf3k2v8q9m7x0c4d5e6f7g8h", time.Now()
	headers := func(keys ...[]byte) map[string]string {
		return map[string]string{
			HeaderID: id, HeaderTimestamp: strconv.FormatInt(now.Unix(), 10),
			HeaderSignature: SignatureHeader(keys, id, now, body),
		}
	}
	type check struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	checks := []check{
		{FormatSecret(newKey), headers(newKey), string(body)},
		{FormatSecret(newKey), headers(newKey, oldKey), string(body)},
		{FormatSecret(oldKey), headers(newKey, oldKey), string(body)},
		{FormatSecret(oldKey), headers(newKey), string(body)},       // rotated out
		{FormatSecret(newKey), headers(newKey), string(body) + " "}, // body changed
		{FormatSecret(newKey), headers(newKey), strings.Replace(string(body), "héllo", "hello", 1)},
	}
	want := []bool{true, true, true, false, false, false}
	in, _ := json.Marshal(checks)
	cmd := exec.Command(node, "verify.js")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node verify.js: %v", err)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node answered %s", out)
	}
	for i, g := range got {
		if (g == "ok") != want[i] {
			t.Errorf("check %d: library says %q, want verified=%v", i, g, want[i])
		}
	}
}
