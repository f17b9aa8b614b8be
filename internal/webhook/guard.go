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
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a reserved address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique-local address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// embedsIPv4 are IPv6 ranges that carry an IPv4 address in their last 32 bits (NAT64), so
// the embedded address is checked too.
var embedsIPv4 = []netip.Prefix{
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// checkAddr returns an error naming why webhooks may not reach a.
func checkAddr(a netip.Addr) error {
	a = a.Unmap()
	if a.Is6() {
		for _, p := range embedsIPv4 {
			if p.Contains(a) {
				b := a.As16()
				if err := checkAddr(netip.AddrFrom4([4]byte(b[12:]))); err != nil {
					return err
				}
			}
		}
	}
	for _, b := range blocked {
		if b.prefix.Contains(a) {
			return fmt.Errorf("%s is %s", a, b.what)
		}
	}
	return nil
}

// errBlocked marks refusals of the guard.
var errBlocked = errors.New("blocked by the SSRF guard")

// dialControl is the net.Dialer Control of webhook requests: it runs after name resolution,
// on the address about to be connected to.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unexpected address %q", errBlocked, address)
	}
	if err := checkAddr(ap.Addr()); err != nil {
		return fmt.Errorf("%w: %v", errBlocked, err)
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
	if allowPrivate {
		return u.String(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if err := checkAddr(a); err != nil {
			return "", fmt.Errorf("the URL points at %v; webhooks may not reach private networks", err)
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
		if err := checkAddr(a); err != nil {
			return "", fmt.Errorf("the host %q resolves to %v; webhooks may not reach private networks", host, err)
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
