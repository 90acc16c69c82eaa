package download

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ErrRefused marks a request the Policy does not allow: a redirect to plain
// http or to a private address. It is never retried.
var ErrRefused = errors.New("refused by the download policy")

// maxRedirects bounds a redirect chain (the hub redirects once, to its CDN).
const maxRedirects = 5

// Policy decides where the requests of a download may go and which of them
// carry the token. Home is the configured endpoint (HF_ENDPOINT): it is
// trusted as configured, even over plain http on a loopback address, which
// is what a local mirror or a test hub is. Every other host, reached by a
// redirect, must be https and must resolve to public addresses only, so a
// hub (or whoever answers for it) cannot point the hive at its own network.
// The token goes to Home's origin only, never along a redirect elsewhere.
type Policy struct {
	Home  *url.URL
	Token string
}

// Client returns an http.Client that enforces the policy. It has no overall
// timeout: downloads are long, and stalls are detected per read.
func (p Policy) Client() *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           p.dialContext(dialer),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		// A gzip-encoded body would make Content-Length and Range count
		// compressed bytes; model files do not compress anyway.
		DisableCompression: true,
	}
	return &http.Client{Transport: tr, CheckRedirect: p.checkRedirect}
}

// Authorize sets the token on req when req goes to Home's origin, and
// removes any Authorization header otherwise.
func (p Policy) Authorize(req *http.Request) {
	req.Header.Del("Authorization")
	if p.Token != "" && p.home(req.URL) {
		req.Header.Set("Authorization", "Bearer "+p.Token)
	}
}

// home reports whether u has Home's scheme and host (port included).
func (p Policy) home(u *url.URL) bool {
	return p.Home != nil && strings.EqualFold(u.Scheme, p.Home.Scheme) && strings.EqualFold(u.Host, p.Home.Host)
}

// Check reports whether a request to u is allowed.
func (p Policy) Check(u *url.URL) error {
	if p.home(u) {
		return nil
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: %s is not https (only the configured endpoint %s may be plain http)", ErrRefused, redact(u), p.homeText())
	}
	if u.User != nil {
		return fmt.Errorf("%w: %s carries credentials", ErrRefused, redact(u))
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !public(ip) {
		return fmt.Errorf("%w: %s is a private address", ErrRefused, redact(u))
	}
	return nil
}

func (p Policy) homeText() string {
	if p.Home == nil {
		return "(none)"
	}
	return p.Home.Scheme + "://" + p.Home.Host
}

// checkRedirect is the client's CheckRedirect: the target must pass Check,
// and the token is re-decided for the new host. net/http has copied the
// previous request's headers into req by now, so this is the last word.
func (p Policy) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRefused, maxRedirects)
	}
	if err := p.Check(req.URL); err != nil {
		return fmt.Errorf("redirect from %s: %w", redact(via[len(via)-1].URL), err)
	}
	p.Authorize(req)
	return nil
}

// dialContext dials Home as configured, and any other host only at a public
// address, pinning the address it checked so that a second DNS answer
// cannot swap in a private one.
func (p Policy) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if p.trustedDial(host, port) {
			return d.DialContext(ctx, network, addr)
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		var lastErr error
		for _, ip := range ips {
			if !public(ip) {
				return nil, fmt.Errorf("%w: %s resolves to the private address %s", ErrRefused, host, ip.Unmap())
			}
		}
		for _, ip := range ips {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			lastErr = err
		}
		if lastErr == nil {
			lastErr = fmt.Errorf("%s has no address", host)
		}
		return nil, lastErr
	}
}

// trustedDial reports whether host:port is Home or a proxy from the
// environment (which then forwards to hosts Check has allowed).
func (p Policy) trustedDial(host, port string) bool {
	if p.Home != nil && strings.EqualFold(host, strings.Trim(p.Home.Hostname(), "[]")) && port == homePort(p.Home) {
		return true
	}
	for _, scheme := range []string{"http", "https"} {
		u := &url.URL{Scheme: scheme, Host: "example.com"}
		if proxy, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && proxy != nil &&
			strings.EqualFold(host, strings.Trim(proxy.Hostname(), "[]")) && port == homePort(proxy) {
			return true
		}
	}
	return false
}

func homePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}

// public reports whether ip is a global unicast address outside the
// private, shared (carrier NAT) and documentation ranges. A NAT64 address
// is judged by the IPv4 address it embeds.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// nat64 is the well-known prefix of NAT64, which embeds IPv4 addresses.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// redact drops the query (signed CDN URLs carry credentials there) and any
// user info from a URL for messages.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}

func redactString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return redact(u)
}
