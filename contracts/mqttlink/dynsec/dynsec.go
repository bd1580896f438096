// Package dynsec speaks to Mosquitto's dynamic security plugin: commands
// on $CONTROL/dynamic-security/v1, each answer matched to its command by
// correlation data. The link must log in as an identity the plugin gives
// its admin role (cafe-admin). cmd/internal/brokerauth uses it to keep the
// broker's logins in step with the registry; tests use it to make logins of
// their own.
package dynsec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"cafe/contracts/mqttlink"
)

// The dynamic security plugin's control topics.
const (
	controlTopic  = "$CONTROL/dynamic-security/v1"
	responseTopic = controlTopic + "/response"
)

// Command is one dynamic security command ({"command": ..., ...}).
type Command map[string]any

// Response is the plugin's answer to one command.
type Response struct {
	Command         string          `json:"command"`
	Error           string          `json:"error"`
	Data            json.RawMessage `json:"data"`
	CorrelationData string          `json:"correlationData"`
}

// ErrAlreadyExists is how the plugin answers a create for a name it has.
var ErrAlreadyExists = errors.New("already exists")

// Control sends commands to the plugin over an MQTT link logged in as
// cafe-admin and matches each answer to its command.
type Control struct {
	link *mqttlink.Link

	mu      sync.Mutex
	waiting map[string]chan Response
}

// NewControl subscribes link to the plugin's answers. link must log in as
// an identity with the plugin's admin role.
func NewControl(ctx context.Context, link *mqttlink.Link) (*Control, error) {
	c := &Control{link: link, waiting: map[string]chan Response{}}
	if err := link.Subscribe(ctx, responseTopic, 1, c.onResponse); err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", responseTopic, err)
	}
	return c, nil
}

func (c *Control) onResponse(_ string, payload []byte) {
	var msg struct {
		Responses []Response `json:"responses"`
	}
	if json.Unmarshal(payload, &msg) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range msg.Responses {
		if ch := c.waiting[r.CorrelationData]; ch != nil {
			ch <- r
			delete(c.waiting, r.CorrelationData)
		}
	}
}

// Do sends one command and returns the plugin's answer; an answer with an
// error is returned as the error (ErrAlreadyExists for an existing name).
func (c *Control) Do(ctx context.Context, cmd Command) (Response, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	corr := hex.EncodeToString(b[:])
	cmd["correlationData"] = corr
	body, err := json.Marshal(map[string]any{"commands": []Command{cmd}})
	if err != nil {
		return Response{}, err
	}
	ch := make(chan Response, 1)
	c.mu.Lock()
	c.waiting[corr] = ch
	c.mu.Unlock()
	defer func() { c.mu.Lock(); delete(c.waiting, corr); c.mu.Unlock() }()
	if err := c.link.Publish(ctx, mqttlink.Message{Topic: controlTopic, Payload: body, QoS: 1}); err != nil {
		return Response{}, fmt.Errorf("%s: %w", cmd["command"], err)
	}
	select {
	case r := <-ch:
		switch {
		case r.Error == "":
			return r, nil
		case r.Error == "Client already exists":
			return r, fmt.Errorf("%s %v: %w", cmd["command"], cmd["username"], ErrAlreadyExists)
		}
		return r, fmt.Errorf("%s %v: the broker said %q", cmd["command"], cmd["username"], r.Error)
	case <-ctx.Done():
		return Response{}, fmt.Errorf("%s: no answer from the broker's dynamic security plugin (is it loaded, and is this link cafe-admin?): %w", cmd["command"], ctx.Err())
	}
}

// ListedClient is one login as listClients (verbose) shows it.
type ListedClient struct {
	Username        string `json:"username"`
	ClientID        string `json:"clientid"`
	TextName        string `json:"textname"`
	TextDescription string `json:"textdescription"`
}

// listPage is how many logins one listClients answer carries.
const listPage = 2000

// List returns every login the plugin holds.
func (c *Control) List(ctx context.Context) ([]ListedClient, error) {
	var out []ListedClient
	for offset := 0; ; offset += listPage {
		r, err := c.Do(ctx, Command{"command": "listClients", "verbose": true, "count": listPage, "offset": offset})
		if err != nil {
			return nil, err
		}
		var page struct {
			TotalCount int            `json:"totalCount"`
			Clients    []ListedClient `json:"clients"`
		}
		if err := json.Unmarshal(r.Data, &page); err != nil {
			return nil, fmt.Errorf("listClients: %w", err)
		}
		out = append(out, page.Clients...)
		if len(page.Clients) == 0 || len(out) >= page.TotalCount {
			return out, nil
		}
	}
}
