package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// The SSRF guard: webhook URLs are chosen by organization admins, so without it anyone
// with an ADMIN role could make the server POST to its own network — loopback services,
// the database, cloud metadata endpoints. URLs are checked when they are saved (by name
// resolution) and again on every connection, against the address actually dialled, so a
// name that resolves elsewhere later (DNS rebinding) is refused too.

// blocked are the address ranges webhooks may not reach unless private targets are allowed.
var blocked = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.169.254/32"), "a cloud metadata address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a reserved address"}, // 6to4 relays
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a reserved address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("100::/64"), "a reserved address"}, // discard-only
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique-local address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// embedded lists IPv6 ranges that carry an IPv4 address a packet may end up at, so that
// address is checked too: IPv4-compatible (::a.b.c.d), NAT64, 6to4 and Teredo (its server,
// and its client, stored inverted).
var embedded = []struct {
	prefix netip.Prefix
	at     int  // the byte offset of the IPv4 address
	invert bool // Teredo stores the client address inverted
}{
	{netip.MustParsePrefix("::/96"), 12, false},
	{netip.MustParsePrefix("64:ff9b::/96"), 12, false},
	{netip.MustParsePrefix("64:ff9b:1::/48"), 12, false},
	{netip.MustParsePrefix("2002::/16"), 2, false},
	{netip.MustParsePrefix("2001::/32"), 4, false},
	{netip.MustParsePrefix("2001::/32"), 12, true},
}

// checkAddr returns what kind of address a is when webhooks may not reach it ("a loopback
// address"), and "" when they may.
func checkAddr(a netip.Addr) string {
	if a.Zone() != "" {
		// netip's prefixes never contain a zoned address, and the kernel ignores the zone of
		// a non-link-local one: [::1%lo] is loopback.
		return "an address with a zone"
	}
	a = a.Unmap()
	for _, b := range blocked {
		if b.prefix.Contains(a) {
			return b.what
		}
	}
	if a.Is6() {
		b := a.As16()
		for _, e := range embedded {
			if !e.prefix.Contains(a) {
				continue
			}
			v4 := [4]byte(b[e.at : e.at+4])
			if e.invert {
				for i := range v4 {
					v4[i] ^= 0xff
				}
			}
			if what := checkAddr(netip.AddrFrom4(v4)); what != "" {
				return what
			}
		}
	}
	return ""
}

// errBlocked marks refusals of the guard.
var errBlocked = errors.New("blocked by the SSRF guard")

// dialControl is the net.Dialer Control of webhook requests: it runs after name resolution,
// on the address about to be connected to. The error names the kind of address only: the
// address came from DNS, and lastError must not map an internal network for an admin.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unexpected address", errBlocked)
	}
	if what := checkAddr(ap.Addr()); what != "" {
		return fmt.Errorf("%w: the host resolves to %s", errBlocked, what)
	}
	return nil
}

// Resolver looks up host names (net.DefaultResolver by default).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// checkURL validates a webhook URL: http or https, a host, and — unless allowPrivate — no
// address of the host in a blocked range. It returns the URL in canonical form.
func checkURL(ctx context.Context, raw string, allowPrivate bool, r Resolver) (string, error) {
	raw = strings.TrimSpace(raw)
	if len(raw) > 2048 {
		return "", errors.New("the URL is longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("the URL is malformed")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("the URL must start with http:// or https://")
	}
	host := u.Hostname()
	if host == "" || u.Opaque != "" {
		return "", errors.New("the URL has no host")
	}
	if u.Fragment != "" {
		return "", errors.New("the URL may not have a #fragment")
	}
	if strings.Contains(host, "%") {
		// An IPv6 zone (http://[fe80::1%25eth0]/) names one of this machine's interfaces.
		return "", errors.New("the URL's host may not have a zone (%25…)")
	}
	if allowPrivate {
		return u.String(), nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if what := checkAddr(a); what != "" {
			return "", fmt.Errorf("the URL points at %s, %s; webhooks may not reach private networks", a, what)
		}
		return u.String(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return "", fmt.Errorf("the host %q does not resolve", host)
	}
	for _, a := range addrs {
		// Neither the address nor its kind is named: that would let an admin map the
		// internal DNS through this message.
		if checkAddr(a) != "" {
			return "", fmt.Errorf("the host %q resolves to a private address; webhooks may not reach private networks", host)
		}
	}
	return u.String(), nil
}

// newDialer returns the dialer of webhook requests; with allowPrivate it checks nothing.
func newDialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = dialControl
	}
	return d
}
