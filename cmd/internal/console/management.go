package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"cafe/contracts"
)

// Management reads queues and consumers from RabbitMQ's management API
// (the HTTP API on 15672), with the login of the AMQP URL it is given.
//
// It is the console's stand-in until cmd/internal/status (the source of
// `cafe status`) is merged; the console only needs it to be a Pipeline.
type Management struct {
	API      string // http://127.0.0.1:15672
	User     string
	Password string
	Top      contracts.Topology
	Latency  *Latency // p99 from the services' metrics; nil: unknown
	Client   *http.Client

	mu   sync.Mutex
	down SourceState
}

// DefaultManagementAPI is the management API of a one-machine setup.
const DefaultManagementAPI = "http://127.0.0.1:15672"

// NewManagement reads the management API at api with amqpURL's login.
func NewManagement(api, amqpURL string, top contracts.Topology, lat *Latency) (*Management, error) {
	u, err := url.Parse(amqpURL)
	if err != nil || u.User == nil {
		return nil, fmt.Errorf("console: the AMQP URL names no login for RabbitMQ's management API")
	}
	pw, _ := u.User.Password()
	return &Management{API: strings.TrimRight(api, "/"), User: u.User.Username(), Password: pw, Top: top, Latency: lat,
		Client: &http.Client{Timeout: 2 * time.Second}}, nil
}

type mgmtQueue struct {
	Name      string `json:"name"`
	Messages  int    `json:"messages"`
	Ready     int    `json:"messages_ready"`
	Unacked   int    `json:"messages_unacknowledged"`
	Consumers int    `json:"consumers"`
	Stats     struct {
		Publish struct {
			Rate float64 `json:"rate"`
		} `json:"publish_details"`
		Ack struct {
			Rate float64 `json:"rate"`
		} `json:"ack_details"`
	} `json:"message_stats"`
}

type mgmtConsumer struct {
	Queue struct {
		Name string `json:"name"`
	} `json:"queue"`
	Channel struct {
		Connection string `json:"connection_name"`
		User       string `json:"user"`
	} `json:"channel_details"`
	Active bool `json:"active"`
}

// Pipeline reads the queues and consumers now.
func (m *Management) Pipeline(ctx context.Context) PipelineView {
	v := PipelineView{At: time.Now(), Queues: []Queue{}, Workers: []Worker{}, Breakers: []Breaker{}}
	var qs []mgmtQueue
	var cs []mgmtConsumer
	err := m.get(ctx, "/api/queues/%2F?columns=name,messages,messages_ready,messages_unacknowledged,consumers,message_stats", &qs)
	if err == nil {
		err = m.get(ctx, "/api/consumers/%2F", &cs)
	}
	v.Sources = []SourceState{m.state(err)}
	if err != nil {
		return v
	}
	m.fill(&v, qs, cs)
	if m.Latency != nil {
		v.P99Millis = m.Latency.P99Millis()
	}
	return v
}

func (m *Management) fill(v *PipelineView, qs []mgmtQueue, cs []mgmtConsumer) {
	mine := map[string]bool{}
	for _, q := range m.Top.Queues() {
		mine[q.Name] = true
	}
	for _, q := range qs {
		if !mine[q.Name] {
			continue
		}
		v.Queues = append(v.Queues, Queue{Name: q.Name, Depth: q.Messages, Ready: q.Ready, Unacked: q.Unacked,
			InRate: q.Stats.Publish.Rate, OutRate: q.Stats.Ack.Rate, Consumers: q.Consumers})
		if q.Name == m.Top.CommandsQueue() {
			v.Commands = q.Stats.Publish.Rate
		}
	}
	roles := map[string]string{m.Top.CommandsQueue(): "barista", m.Top.ResultsQueue(): "caller"}
	for _, c := range cs {
		if role, ok := roles[c.Queue.Name]; ok {
			state := "consuming"
			if !c.Active {
				state = "waiting (single active consumer)"
			}
			v.Workers = append(v.Workers, Worker{Role: role, Name: c.Channel.Connection, State: state})
		}
	}
}

func (m *Management) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.API+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(m.User, m.Password)
	resp, err := m.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("management API %s: %s (the user %s needs the monitoring tag)", path[:strings.IndexAny(path+"?", "?")], resp.Status, m.User)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v)
}

// state is RabbitMQ's SourceState after a read that ended with err.
func (m *Management) state(err error) SourceState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.down = SourceState{}
		return SourceState{Name: "RabbitMQ", Up: true}
	}
	if m.down.Since.IsZero() {
		m.down = SourceState{Name: "RabbitMQ", Since: time.Now()}
	}
	m.down.Error = err.Error()
	return m.down
}
