// Package mgmt reads RabbitMQ's management HTTP API (the rabbitmq_management
// plugin, 127.0.0.1:15672 on the one-machine set-up): the one source of a
// queue's unacknowledged count and its rates in and out, which AMQP's
// queue.declare does not tell (it gives ready messages and consumers
// only). `cafe status`, the console and `cafe scale` all read it through
// this package, with the one setting below.
//
// No well-kept Go client of the API is served to this project (rabbit-hole
// is not), and cafe needs one read-only call, GET /api/queues/{vhost}/{name},
// so it is this small client. Answers are bounded (1 MiB) and every failure
// says what to do next. The login needs the `monitoring` tag, which
// `cafe setup` gives cafe-ops.
package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// Setting is where the management API is, its login as the URL's user info
// (without one, the caller's: cafe-ops on this machine).
var Setting = contracts.Setting{Flag: "management-url", Env: "CAFE_MANAGEMENT_URL"}

// DefaultURL is the management API of the one-machine set-up.
const DefaultURL = "http://127.0.0.1:15672/"

// maxAnswerBytes bounds an answer of the API.
const maxAnswerBytes = 1 << 20

// The kinds of failure, for callers that treat them apart (errors.Is).
var (
	ErrUnreachable = errors.New("RabbitMQ management unreachable")
	ErrRefused     = errors.New("RabbitMQ management refused the login")
	ErrNoQueue     = errors.New("no such queue (no cafe service has run with this prefix: check --amqp-prefix / CAFE_AMQP_PREFIX)")
)

// Client reads one vhost's queues.
type Client struct {
	base       *url.URL // without user info
	user, pass string
	vhost      string
	http       *http.Client
}

// New parses raw (http[s]://[user:password@]host:port/) for vhost ("" is
// "/"); user and password are the login when raw has none.
func New(raw, vhost, user, password string) (*Client, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("management URL (%s) is not a URL: want http://[user:password@]host:15672/", Setting)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("management URL %s (%s): want http://[user:password@]host:15672/", u.Redacted(), Setting)
	}
	if u.User != nil {
		user = u.User.Username()
		password, _ = u.User.Password()
		u.User = nil
	}
	if vhost == "" {
		vhost = "/"
	}
	h := &http.Client{Timeout: 5 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	return &Client{base: u, user: user, pass: password, vhost: vhost, http: h}, nil
}

// Close closes the connections kept open between calls.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// VHostOf is the vhost of an AMQP URL setting ("/" when it names none);
// of a cluster's list, the first URL's (they all name the same one).
func VHostOf(amqpURL string) string {
	u, err := url.Parse(amqplink.FirstURL(amqpURL))
	if err != nil || u.Path == "" || u.Path == "/" {
		return "/"
	}
	return strings.TrimPrefix(u.Path, "/")
}

// Host is where the API is, for messages.
func (c *Client) Host() string { return c.base.Host }

// Queue is what the API says of one queue, in part.
type Queue struct {
	Messages  int `json:"messages"`
	Ready     int `json:"messages_ready"`
	Unacked   int `json:"messages_unacknowledged"`
	Consumers int `json:"consumers"`
	Stats     struct {
		Published int  `json:"publish"`
		Publish   rate `json:"publish_details"`
		Ack       rate `json:"ack_details"`
	} `json:"message_stats"`
}

type rate struct {
	Rate float64 `json:"rate"`
}

// RateIn is publishes per second, RateOut acknowledgements per second,
// as the API averages them (over its last 5 s sample).
func (q Queue) RateIn() float64  { return q.Stats.Publish.Rate }
func (q Queue) RateOut() float64 { return q.Stats.Ack.Rate }

// Queue reads the queue called name.
func (c *Client) Queue(ctx context.Context, name string) (Queue, error) {
	var q Queue
	err := c.get(ctx, "api/queues/"+url.PathEscape(c.vhost)+"/"+url.PathEscape(name), &q)
	return q, err
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.base.String(), "/")+"/"+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %w; start it: bash deploy/brokers.sh (it enables rabbitmq_management)", ErrUnreachable, c.base.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	switch {
	case err != nil:
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.base.Host, err)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w %q at %s (401): it needs the monitoring tag (`cafe setup` gives it to cafe-ops; or rabbitmqctl set_user_tags %s monitoring)", ErrRefused, c.user, c.base.Host, c.user)
	case resp.StatusCode == http.StatusNotFound:
		return ErrNoQueue
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("RabbitMQ management at %s answered %s", c.base.Host, resp.Status)
	case len(body) > maxAnswerBytes:
		return fmt.Errorf("RabbitMQ management at %s: answer over %d bytes", c.base.Host, maxAnswerBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("RabbitMQ management at %s: unreadable answer: %w", c.base.Host, err)
	}
	return nil
}
