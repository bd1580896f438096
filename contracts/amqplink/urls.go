package amqplink

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"cafe/contracts"
)

// The URL setting (SettingURL, Config.URL) is a list: one URL, or the
// URLs of several nodes of one RabbitMQ cluster separated by commas,
// amqp://u:p@10.0.0.1:5672/,amqp://u:p@10.0.0.2:5672/. Spaces around a
// comma are ignored; a comma inside a URL (a password, a vhost) must be
// written %2C. Every URL must log in as the same user and go to the same
// vhost: they are the same cluster, and messages carry the user as their
// user-id. Both schemes may not be mixed.

// MaxURLs is the most URLs one setting may list.
const MaxURLs = 32

// maxURLLength bounds one URL (RabbitMQ's user names and vhosts are short).
const maxURLLength = 2048

// ParseURLs splits a URL setting into its URLs and checks each: a scheme
// of amqp or amqps, a host, a port (when given) from 1 to 65535, and the
// same user, vhost and scheme in all. An error names the URL at fault (its
// password redacted) and its place in the list.
func ParseURLs(raw string) ([]string, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, SettingURL.Errorf("empty: want amqp://user:password@host:port/vhost, or several separated by commas")
	}
	parts := strings.Split(raw, ",")
	if len(parts) > MaxURLs {
		return nil, SettingURL.Errorf("%d URLs: want at most %d", len(parts), MaxURLs)
	}
	urls := make([]string, 0, len(parts))
	var first *url.URL
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := parseOne(p)
		if err == nil && first != nil {
			err = sameCluster(first, u)
		}
		if err != nil {
			return nil, SettingURL.Errorf("URL %d of %d, %q: %v", i+1, len(parts), shown(p), err)
		}
		if first == nil {
			first = u
		}
		urls = append(urls, p)
	}
	return urls, nil
}

// shown is raw for an error message: its password redacted, at most 80
// bytes.
func shown(raw string) string {
	s := contracts.RedactURL(raw)
	if len(s) > 80 {
		return strings.ToValidUTF8(s[:80], "") + "…"
	}
	return s
}

// parseOne checks one URL of the list.
func parseOne(raw string) (*url.URL, error) {
	switch {
	case raw == "":
		return nil, errors.New("empty (two commas in a row, or one at an end?)")
	case len(raw) > maxURLLength:
		return nil, fmt.Errorf("%d bytes: want at most %d", len(raw), maxURLLength)
	case strings.ContainsFunc(raw, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return nil, errors.New("contains a control character")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL: want amqp://user:password@host:port/vhost (or amqps://)")
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return nil, errors.New("want the scheme amqp:// or amqps://")
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host: want amqp://user:password@host:port/vhost")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q: want 1 to 65535", p)
		}
	}
	if u.Fragment != "" {
		return nil, errors.New("has a #fragment, which means nothing in an AMQP URL")
	}
	return u, nil
}

// sameCluster checks that u logs in like first (the list is one cluster).
func sameCluster(first, u *url.URL) error {
	switch {
	case u.Scheme != first.Scheme:
		return fmt.Errorf("scheme %s, but the first URL's is %s: use one scheme for the whole list", u.Scheme, first.Scheme)
	case first.User.Username() != u.User.Username():
		return errors.New("another user than the first URL's: every URL of the list must log in as the same user")
	case vhost(first) != vhost(u):
		return errors.New("another vhost than the first URL's: every URL of the list must name the same vhost")
	}
	return nil
}

func vhost(u *url.URL) string {
	if v := strings.TrimPrefix(u.Path, "/"); v != "" {
		return v
	}
	return "/"
}

// FirstURL is the first URL of a URL setting (the setting itself when it
// is not a valid list: the caller's own check reports that), for tools
// that need one address, such as the vhost a list names.
func FirstURL(raw string) string {
	urls, err := ParseURLs(raw)
	if err != nil || len(urls) == 0 {
		return raw
	}
	return urls[0]
}

// MapURLs applies f to every URL of a URL setting and joins the results
// again: credentials filled in on each node's URL, say. A setting that is
// not a valid list is passed to f whole.
func MapURLs(raw string, f func(string) string) string {
	urls, err := ParseURLs(raw)
	if err != nil {
		return f(raw)
	}
	for i, u := range urls {
		urls[i] = f(u)
	}
	return strings.Join(urls, ",")
}
