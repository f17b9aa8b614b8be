package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDNS answers from a table.
type fakeDNS map[string][]string

func (f fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range f[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

var dns = fakeDNS{
	"hooks.example.com":    {"93.184.215.14"},
	"internal.example.com": {"10.1.2.3"},
	"mixed.example.com":    {"93.184.215.14", "192.168.1.10"},
	"v6.example.com":       {"2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
	"metadata.example.com": {"fd00:ec2::254"},
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		refused string // a fragment of the error; "" for accepted
	}{
		{"https://hooks.example.com/wagate", ""},
		{"http://hooks.example.com:8080/x?y=1", ""},
		{"https://93.184.215.14/", ""},
		{"https://v6.example.com/", ""},
		{"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", ""},
		{"ftp://hooks.example.com/", "http:// or https://"},
		{"file:///etc/passwd", "http:// or https://"},
		{"hooks.example.com/x", "http:// or https://"},
		{"https:///path", "no host"},
		{"https://hooks.example.com/#frag", "fragment"},
		{"https://nowhere.example.com/", "does not resolve"},
		{"http://127.0.0.1/", "loopback"},
		{"http://127.1.2.3:9000/", "loopback"},
		{"http://localhost.localdomain.invalid/", "does not resolve"},
		{"http://[::1]/", "loopback"},
		{"http://[::ffff:127.0.0.1]/", "loopback"},
		{"http://10.0.0.1/", "private"},
		{"http://172.16.5.4/", "private"},
		{"http://192.168.0.1/", "private"},
		{"http://internal.example.com/", "private"},
		{"http://mixed.example.com/", "private"},
		{"http://169.254.169.254/latest/meta-data/", "metadata"},
		{"http://[fd00:ec2::254]/", "metadata"},
		{"http://metadata.example.com/", "resolves to a private address"},
		{"http://169.254.1.1/", "link-local"},
		{"http://[fe80::1]/", "link-local"},
		{"http://[fc00::1]/", "unique-local"},
		{"http://100.64.0.1/", "carrier-grade NAT"},
		{"http://0.0.0.0/", "unspecified"},
		{"http://[::]/", "unspecified"},
		{"http://224.0.0.1/", "multicast"},
		{"http://[ff02::1]/", "multicast"},
		{"http://255.255.255.255/", "reserved"},
		{"http://[64:ff9b::a00:1]/", "private"}, // NAT64 of 10.0.0.1
		// A zone makes netip's prefixes miss the address, and Linux ignores it off link-local.
		{"http://[::1%25lo]:8080/x", "zone"},
		{"http://[fe80::1%25eth0]/", "zone"},
		{"http://[fd00::1%251]/", "zone"},
		{"http://[64:ff9b::7f00:1%25x]/", "zone"},
		{"http://[::ffff:127.0.0.1%25x]/", "zone"},
		// IPv6 forms that embed an IPv4 address are checked against it.
		{"http://[::127.0.0.1]/", "loopback"},                          // IPv4-compatible
		{"http://[::a00:1]/", "private"},                               // IPv4-compatible 10.0.0.1
		{"http://[2002:7f00:1::1]/", "loopback"},                       // 6to4 of 127.0.0.1
		{"http://[2002:a00:1::1]/", "private"},                         // 6to4 of 10.0.0.1
		{"http://[2002:5db8:d70e::1]/", ""},                            // 6to4 of 93.184.215.14
		{"http://[2001:0:a00:1::1]/", "private"},                       // Teredo, server 10.0.0.1
		{"http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "loopback"}, // Teredo, client 127.0.0.1
		{"http://[2001:0:4136:e378:8000:63bf:a247:28f1]/", ""},         // Teredo, client 93.184.215.14
		{"http://[100::1]/", "reserved"},
		{"http://192.88.99.1/", "reserved"},
	} {
		_, err := checkURL(context.Background(), tc.url, false, dns)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.url, err)
		case tc.refused != "" && err == nil:
			t.Errorf("%s: accepted, want refused (%s)", tc.url, tc.refused)
		case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
			t.Errorf("%s: %v, want it to mention %q", tc.url, err, tc.refused)
		}
	}
	// Allowed private targets still need http(s).
	if _, err := checkURL(context.Background(), "http://127.0.0.1:8080/", true, dns); err != nil {
		t.Errorf("allow-private refused loopback: %v", err)
	}
	if _, err := checkURL(context.Background(), "gopher://127.0.0.1/", true, dns); err == nil {
		t.Error("allow-private accepted a gopher URL")
	}
	if _, err := checkURL(context.Background(), "http://[fe80::1%25eth0]/", true, dns); err == nil {
		t.Error("allow-private accepted a zone")
	}
	// What a name resolves to is not told: that would map the internal network.
	for _, host := range []string{"internal.example.com", "metadata.example.com", "mixed.example.com"} {
		_, err := checkURL(context.Background(), "http://"+host+"/", false, dns)
		for _, a := range dns[host] {
			if err == nil || strings.Contains(err.Error(), a) || strings.Contains(err.Error(), "cloud metadata") {
				t.Errorf("%s: %v", host, err)
			}
		}
	}
}

// The dial-time check refuses zoned addresses too: a POST to [::1%25lo] reaches loopback.
func TestDialerRefusesZonedAddresses(t *testing.T) {
	for _, a := range []string{"[::1%lo]:80", "[fe80::1%eth0]:80", "[fd00::1%1]:80", "[64:ff9b::7f00:1%x]:80", "[::ffff:127.0.0.1%x]:80"} {
		if err := dialControl("tcp6", a, nil); !errors.Is(err, errBlocked) {
			t.Errorf("%s: %v", a, err)
		}
	}
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	hit := false
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	w := New(nil, Options{Keys: testKeyring(t)}).NewWorker(WorkerOptions{})
	url := fmt.Sprintf("http://[::1%%25lo]:%d/", ln.Addr().(*net.TCPAddr).Port)
	resp, err := w.http.Post(url, "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, errBlocked) || hit {
		t.Fatalf("POST to %s: %v (reached: %v)", url, err, hit)
	}
}

// At send time the guard checks the address actually dialled: a name that resolved to a
// public address when saved and to loopback now (DNS rebinding) is refused, and so is a
// redirect target (redirects are not followed at all).
func TestDialerRefusesPrivateAddresses(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	w := New(nil, Options{Keys: testKeyring(t)}).NewWorker(WorkerOptions{})
	_, err := w.http.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if !errors.Is(err, errBlocked) || hit {
		t.Fatalf("POST to %s: %v (reached: %v)", srv.URL, err, hit)
	}
	if msg := describe(err); !strings.Contains(msg, "loopback") || !strings.Contains(msg, "SSRF") || strings.Contains(msg, "127.0.0.1") {
		t.Fatalf("described as %q", msg)
	}
	open := New(nil, Options{Keys: testKeyring(t), AllowPrivate: true}).NewWorker(WorkerOptions{})
	resp, err := open.http.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil || !hit {
		t.Fatalf("allow-private: %v", err)
	}
	resp.Body.Close()
}

func testKeyring(t *testing.T) *Keyring {
	t.Helper()
	k, err := NewKeyring(newSecret())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyringSealsPerRow(t *testing.T) {
	k := testKeyring(t)
	secret := newSecret()
	sealed := k.Seal(secret, "whk_a")
	if strings.Contains(string(sealed), string(secret)) {
		t.Fatal("sealed value contains the secret")
	}
	if got, err := k.Open(sealed, "whk_a"); err != nil || string(got) != string(secret) {
		t.Fatalf("Open: %v", err)
	}
	if _, err := k.Open(sealed, "whk_b"); err == nil {
		t.Fatal("opened a secret sealed for another row")
	}
	if _, err := testKeyring(t).Open(sealed, "whk_a"); !errors.Is(err, ErrOtherKey) {
		t.Fatalf("another key: %v", err)
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	k1, generated, err := LoadKeyring("", dir)
	if err != nil || !generated {
		t.Fatalf("first load: %v %v", generated, err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	k2, _, err := LoadKeyring("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Open(k1.Seal([]byte("x"), "id"), "id"); err != nil {
		t.Fatalf("the generated key changed: %v", err)
	}
	if _, _, err := LoadKeyring("not base64!", dir); err == nil {
		t.Fatal("accepted a malformed key")
	}
	if _, _, err := LoadKeyring("c2hvcnQ=", dir); err == nil {
		t.Fatal("accepted a short key")
	}
	if _, generated, err := LoadKeyring("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", dir); err != nil || generated {
		t.Fatalf("configured key: %v %v", generated, err)
	}
}
