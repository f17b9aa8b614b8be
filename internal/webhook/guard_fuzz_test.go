package webhook

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzCheckURL: a webhook URL the guard accepts is http(s) with a host, is already in the
// canonical form it returns, names the host the HTTP client will connect to, and that host,
// when it is an address, is not one the guard blocks. (Names are checked again at dial time,
// by dialControl.)
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/wagate", "http://hooks.example.com:8080/x?y=1",
		"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1%25eth0]/",
		"http://127.0.0.1:80@hooks.example.com/", "http://hooks.example.com@127.0.0.1/", "http://[64:ff9b::a00:1]/",
		"https:///path", "http://0x7f.1/", "http://2130706433/", "HTTP://HOOKS.EXAMPLE.COM/", " https://hooks.example.com ",
		"https://hooks.example.com/#x", "https:hooks.example.com", "http://hooks.example.com\\@127.0.0.1/"} {
		f.Add(s, false)
	}
	f.Add("http://127.0.0.1:8080/", true)
	f.Fuzz(func(t *testing.T, raw string, allowPrivate bool) {
		canonical, err := checkURL(context.Background(), raw, allowPrivate, dns)
		if err != nil {
			return
		}
		again, err := checkURL(context.Background(), canonical, allowPrivate, dns)
		if err != nil || again != canonical {
			t.Fatalf("checkURL(%q) = %q, which checks as %q, %v", raw, canonical, again, err)
		}
		req, err := http.NewRequest(http.MethodPost, canonical, nil)
		if err != nil {
			t.Fatalf("accepted %q, which net/http refuses: %v", canonical, err)
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" || req.URL.Hostname() == "" || req.URL.Fragment != "" {
			t.Fatalf("accepted %q: scheme %q, host %q", canonical, req.URL.Scheme, req.URL.Hostname())
		}
		if allowPrivate {
			return
		}
		host := req.URL.Hostname()
		if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
			if why := checkAddr(a); why != "" {
				t.Fatalf("accepted %q, which connects to %s", canonical, why)
			}
		} else if _, known := dns[host]; !known {
			t.Fatalf("accepted %q, whose host %q does not resolve", canonical, host)
		}
	})
}
