package deadletter

import (
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// Letter is one dead-lettered message.
type Letter struct {
	MessageID   string         `json:"message_id"`
	Queue       string         `json:"queue"`       // where it died
	Exchange    string         `json:"exchange"`    // where it was published, and is replayed to
	RoutingKey  string         `json:"routing_key"` // its routing key
	Reason      string         `json:"reason"`      // rejected, delivery_limit, expired, maxlen
	Count       int64          `json:"count"`       // times it died this way
	DiedAt      time.Time      `json:"died_at"`
	ClientID    string         `json:"client_id,omitempty"`
	DeviceID    string         `json:"device_id,omitempty"`
	MsgID       string         `json:"msg_id,omitempty"`
	Method      string         `json:"method,omitempty"` // the JSON-RPC method of a command
	Deadline    time.Time      `json:"deadline,omitzero"`
	AcceptedAt  time.Time      `json:"accepted_at,omitzero"`
	ReplayCount int64          `json:"replay_count,omitempty"` // times it was replayed before (HeaderReplayCount)
	Deaths      []Death        `json:"deaths,omitempty"`       // its death history, most recent first (x-death)
	Headers     map[string]any `json:"headers,omitempty"`      // every AMQP header but x-death, as text
	Body        string         `json:"body"`
	BodyBytes   int            `json:"body_bytes"`
}

// Death is one entry of a letter's death history.
type Death struct {
	Queue      string    `json:"queue"`
	Exchange   string    `json:"exchange"`
	RoutingKey string    `json:"routing_key"`
	Reason     string    `json:"reason"`
	Count      int64     `json:"count"`
	Time       time.Time `json:"time"`
}

// HeaderReplayCount counts how often a message was replayed from the dead
// letters (contracts.HeaderReplayCount), so an operator sees a command
// that keeps coming back.
const HeaderReplayCount = contracts.HeaderReplayCount

// MaxBodyShown bounds the body text a Letter carries.
const MaxBodyShown = 4096

func letterOf(d amqp.Delivery) Letter {
	l := Letter{MessageID: d.MessageId, BodyBytes: len(d.Body)}
	body := d.Body
	if len(body) > MaxBodyShown {
		body = body[:MaxBodyShown]
	}
	l.Body = string(body)
	m := contracts.ReadMeta(d.Headers) // either header form, unchecked: a letter shows what it carries
	l.ClientID, l.DeviceID, l.MsgID, l.Deadline, l.AcceptedAt = m.ClientID, m.DeviceID, m.MsgID, m.Deadline, m.AcceptedAt
	l.ReplayCount, _ = d.Headers[HeaderReplayCount].(int64)
	l.Method = methodOf(d.Body)
	if death, ok := amqplink.FirstDeath(d.Headers); ok {
		l.Queue, l.Exchange, l.RoutingKey = death.Queue, death.Exchange, death.RoutingKey
		l.Reason, l.Count, l.DiedAt = death.Reason, death.Count, death.Time
	}
	l.Deaths = deathsOf(d.Headers)
	l.Headers = headersOf(d.Headers)
	return l
}

// methodOf is the method of a JSON-RPC request, or of the first of a
// batch; "" for anything else (a result, a body that is not JSON).
func methodOf(body []byte) string {
	var one struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(body, &one) == nil {
		return one.Method
	}
	var batch []struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(body, &batch) == nil && len(batch) > 0 {
		return batch[0].Method
	}
	return ""
}

func deathsOf(h amqp.Table) []Death {
	entries, _ := h["x-death"].([]any)
	var out []Death
	for _, e := range entries {
		x, ok := e.(amqp.Table)
		if !ok {
			continue
		}
		one, _ := amqplink.FirstDeath(amqp.Table{"x-death": []any{x}})
		out = append(out, Death(one))
	}
	return out
}

func headersOf(h amqp.Table) map[string]any {
	out := map[string]any{}
	for k, v := range h {
		if k == "x-death" {
			continue
		}
		switch v := v.(type) {
		case string, bool, int64, int32, float64, time.Time:
			out[k] = v
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}
