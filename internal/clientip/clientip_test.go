package clientip

import (
	"net/http/httptest"
	"testing"
)

func TestOf(t *testing.T) {
	trusted, err := ParseTrusted("10.0.0.0/8, 192.0.2.7, ::1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer: its header is ignored", "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer without header", "10.1.2.3:1234", nil, "10.1.2.3"},
		{"trusted peer: the client it names", "10.1.2.3:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"forged entries left of the real client are ignored", "10.1.2.3:1234", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"a chain of trusted proxies", "10.1.2.3:1234", []string{"198.51.100.1, 192.0.2.7", "10.9.9.9"}, "198.51.100.1"},
		{"only trusted hops: the farthest", "10.1.2.3:1234", []string{"10.0.0.1"}, "10.0.0.1"},
		{"a malformed hop ends the chain", "10.1.2.3:1234", []string{"198.51.100.1, garbage"}, "10.1.2.3"},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:10.1.2.3]:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv6 trusted peer", "[::1]:1234", []string{"2001:db8::1"}, "2001:db8::1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := trusted.Of(r).String(); got != tt.want {
				t.Fatalf("client %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseTrusted(t *testing.T) {
	for _, tt := range []struct {
		in  string
		n   int
		bad bool
	}{
		{in: "", n: 0},
		{in: "10.0.0.0/8,,192.0.2.1, fd00::/8", n: 3},
		{in: "10.0.0.1/8", n: 1}, // masked to 10.0.0.0/8
		{in: "proxy.example.com", bad: true},
		{in: "10.0.0.0/33", bad: true},
	} {
		got, err := ParseTrusted(tt.in)
		if (err != nil) != tt.bad || len(got) != tt.n {
			t.Errorf("ParseTrusted(%q) = %v, %v", tt.in, got, err)
		}
	}
}
