package loadgen

import (
	"testing"
	"time"
)

// The subscriber reads a frame's marker and cursor without decoding it: both must survive
// the JSON a server wraps them in.
func TestFrameParsing(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	frame := []byte(`{"id":"1","type":"next","payload":{"data":{"events":{"cursor":"42","type":"MESSAGE_RECEIVED","payload":{"fromMe":false,"text":"` +
		Marker(7, 3, 9, at) + `"}}}}}`)
	if c, ok := cursorOf(frame); !ok || c != 42 {
		t.Fatalf("cursor = %d, %v; want 42", c, ok)
	}
	for key, want := range map[string]int64{"B|w=": 7, "|o=": 3, "|s=": 9, "|t=": at.UnixNano()} {
		if got, ok := field(frame, key); !ok || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, ok, want)
		}
	}
	if _, ok := field([]byte(`{"text":"no marker"}`), "|t="); ok {
		t.Error("a frame without a marker parsed")
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"ws://127.0.0.1:8080/query", "http://[::1]:1/", "ws://127.0.0.2:9/"} {
		if err := Loopback(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"ws://10.0.0.1/query", "http://example.com/", "ws://0.0.0.0:80/"} {
		if Loopback(u) == nil {
			t.Errorf("%s accepted", u)
		}
	}
}
