package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cafe/cashier"
	"cafe/cmd/internal/appclient"
	"cafe/cmd/internal/cli"
	"cafe/contracts"
	"cafe/contracts/mqttlink"
)

// Exit codes of `cafe order`.
const (
	exitErrorResult = 1 // the result is a JSON-RPC error (from the device or the pipeline)
	exitUsage       = 2 // bad flags or setup
	exitNoResult    = 3 // no result before the wait ended
	exitRefused     = 4 // the cashier did not accept the command (non-202)
)

type orderOptions struct {
	url, mqttURL, token, client string
	caFile                      string // trusted for the cashier's HTTPS and an ssl:// broker
	http                        *http.Client
	stderr                      io.Writer
	device, method, params, id  string
	timeout, extraWait          time.Duration
	oneWay                      bool
}

func orderCommand() *cobra.Command {
	o := orderOptions{}
	cmd := &cobra.Command{
		Use:   "order",
		Short: "Submit one command over HTTP and wait for its result over MQTT",
		Long: `order does what an app does: it asks the cashier for its MQTT credentials
(POST /v1/sessions with its token), subscribes to its results topic
(clients/{client}/results) as the app, submits one JSON-RPC request, waits
for the result with the same id, and prints it. An app has one MQTT client
id: a connection of the same app elsewhere is replaced while order runs.

When no result arrives over MQTT in time, it asks the cashier for the
command's record (GET /v1/commands/{id}) and prints the result recorded
there, if the ledger has one.

Exit status: 0 a result, 1 an error result (from the device or the pipeline),
2 bad usage, 3 no result in time, 4 the cashier refused the command.

Without --token and --client it uses the demo client that ` + "`cafe up`" + ` creates.
With an https:// --url or an ssl:// broker it trusts the CA of --ca-file
(default: the local CA that ` + "`cafe setup`" + ` made, if there is one) besides the
system's trust store for the cashier, and that CA for the broker.`,
		Example: `  cafe order --device sim-1 --method echo --params '{"hello":"cafe"}'
  cafe order --device lamp-7 --method on --timeout 2s --token "$TOKEN" --client app-1
  cafe order --device sim-1 --method blink --one-way
  cafe order --url https://127.0.0.1:8443 --ca-file ~/.config/cafe/tls/ca.pem --device sim-1 --method echo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyEnv(cmd.Flags()); err != nil {
				return &exitError{exitUsage, err}
			}
			return order(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.register(cmd)
	return cmd
}

// register adds order's flags to cmd.
func (o *orderOptions) register(cmd *cobra.Command) {
	f := cli.On(cmd.Flags())
	f.String(&o.url, cli.Setting("url", "CAFE_URL"), "http://127.0.0.1:8080", "the cashier's base URL")
	f.String(&o.mqttURL, cli.Setting("mqtt-url", "CAFE_ORDER_MQTT_URL"), "", "MQTT broker where results arrive (default: the session's mqtt_url)")
	f.String(&o.token, cli.Setting("token", "CAFE_TOKEN"), "", "the app's bearer token (default: the demo client's)")
	f.String(&o.client, cli.Setting("client", "CAFE_CLIENT_ID"), "", "the app's client id, checked against the session's (default: the session's)")
	f.String(&o.caFile, settingCAFile, "", "PEM file of a CA to trust for the cashier's HTTPS and an ssl:// broker (default: the local CA of `cafe setup`, if any)")
	cmd.Flags().StringVar(&o.device, "device", "", "device id to command")
	cmd.Flags().StringVar(&o.method, "method", "", "JSON-RPC method")
	cmd.Flags().StringVar(&o.params, "params", "", "JSON-RPC params: a JSON object or array")
	cmd.Flags().StringVar(&o.id, "id", "", "the command's JSON-RPC id (default: order-<random>)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Second, "the command's deadline (Cafe-Timeout); order waits this long plus --extra-wait")
	cmd.Flags().DurationVar(&o.extraWait, "extra-wait", 3*time.Second, "how long to wait for the result after the deadline (queueing and delivery)")
	cmd.Flags().BoolVar(&o.oneWay, "one-way", false, "send a notification (no id): the device gets it, no result comes back")
	_ = cmd.MarkFlagRequired("device")
	_ = cmd.MarkFlagRequired("method")
}

func (o *orderOptions) check() error {
	if !contracts.ValidDeviceID(o.device) {
		return fmt.Errorf("--device %q: want 1 to 128 characters from A-Z a-z 0-9 . _ : -", o.device)
	}
	if o.params != "" {
		p := strings.TrimSpace(o.params)
		if !json.Valid([]byte(p)) || (p[0] != '{' && p[0] != '[') {
			return fmt.Errorf("--params %q: want a JSON object or array, like '{\"level\":3}'", o.params)
		}
	}
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout %v: want more than 0", o.timeout)
	}
	if o.token == "" {
		if o.token = demoToken(); o.token == "" {
			return errors.New("no token: pass --token (or CAFE_TOKEN), or run `cafe up` once to create the demo client")
		}
	}
	if err := o.trust(); err != nil {
		return err
	}
	if o.id == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.id = "order-" + hex.EncodeToString(b[:])
	}
	return nil
}

// request builds the JSON-RPC request body.
func (o *orderOptions) request() ([]byte, error) {
	req := map[string]any{"jsonrpc": contracts.Version, "method": o.method}
	if o.params != "" {
		req["params"] = json.RawMessage(o.params)
	}
	if !o.oneWay {
		req["id"] = o.id
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := contracts.ParseRequest(body); err != nil {
		return nil, fmt.Errorf("the request would be refused: %w", err)
	}
	return body, nil
}

func order(ctx context.Context, o orderOptions, stdout, stderr io.Writer) error {
	if err := o.check(); err != nil {
		return &exitError{exitUsage, err}
	}
	body, err := o.request()
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	o.stderr = stderr
	wait := o.timeout + o.extraWait
	ctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
	defer cancel()

	results := make(chan []byte, 16)
	if !o.oneWay {
		stop, err := o.listen(ctx, results)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := submit(ctx, o, body, stdout); err != nil {
		return err
	}
	if o.oneWay {
		fmt.Fprintf(stderr, "one-way command accepted for %s; no result will come\n", o.device)
		return nil
	}
	fmt.Fprintf(stderr, "accepted: %s on %s (id %q); waiting up to %v for the result on %s\n",
		o.method, o.device, o.id, wait, contracts.ResultsTopic(o.client))
	err = o.await(results, wait, stdout)
	var ee *exitError
	if errors.As(err, &ee) && ee.code == exitNoResult {
		return o.fallback(ctx, err, stdout, stderr)
	}
	return err
}

// fallback asks the cashier for the command's record when its result did
// not arrive over MQTT (a lost push, an MQTT broker away): the result the
// ledger recorded is the one that was pushed. Without one, noResult stands.
func (o *orderOptions) fallback(ctx context.Context, noResult error, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "no result over MQTT; asking the cashier for the command's record (GET %s)\n", cashier.CommandPath([]byte(`"`+o.id+`"`)))
	rec, status, err := o.record(ctx)
	if err != nil || rec.Result == nil {
		why := fmt.Sprintf("the cashier answered %d", status)
		if err != nil {
			why = err.Error()
		} else if rec.Status != "" {
			why = "its status is " + rec.Status
		}
		return &exitError{exitNoResult, fmt.Errorf("%w; and no result in its record: %s", noResult, why)}
	}
	return o.print(rec.Result, stdout)
}

// commandRecord is the part of GET /v1/commands/{id} that cafe order reads.
type commandRecord struct {
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
}

func (o *orderOptions) record(ctx context.Context) (commandRecord, int, error) {
	var rec commandRecord
	u, err := url.JoinPath(o.url, cashier.CommandPath([]byte(`"`+o.id+`"`)))
	if err != nil {
		return rec, 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return rec, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	res, err := o.httpClient().Do(req) // the client that trusts --ca-file, as for the submit
	if err != nil {
		return rec, 0, fmt.Errorf("cannot reach the cashier at %s: %w", o.url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 2<<20))
	if res.StatusCode != http.StatusOK {
		return rec, res.StatusCode, nil
	}
	return rec, res.StatusCode, json.Unmarshal(body, &rec)
}

// await prints the result with the command's id, or says none came.
func (o *orderOptions) await(results <-chan []byte, wait time.Duration, stdout io.Writer) error {
	want := `"` + o.id + `"`
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case payload := <-results:
			var resp contracts.Response
			if json.Unmarshal(payload, &resp) != nil || string(resp.ID) != want {
				continue // another command's result on the same topic
			}
			return o.print(payload, stdout)
		case <-deadline.C:
			return &exitError{exitNoResult, fmt.Errorf("no result for id %q within %v (is a barista and a caller running? is the device online?)", o.id, wait)}
		}
	}
}

// print prints a result and says by the exit status whether it is an error.
func (o *orderOptions) print(payload []byte, stdout io.Writer) error {
	var resp contracts.Response
	if err := json.Unmarshal(payload, &resp); err != nil {
		return &exitError{exitNoResult, fmt.Errorf("the result is not a JSON-RPC response: %w", err)}
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, payload, "", "  ") != nil {
		pretty.Write(payload)
	}
	fmt.Fprintln(stdout, pretty.String())
	if resp.Error != nil {
		return &exitError{exitErrorResult, fmt.Errorf("error result %d: %s", resp.Error.Code, resp.Error.Message)}
	}
	return nil
}

// session asks the cashier for the app's MQTT credentials, as every app does.
func (o *orderOptions) session(ctx context.Context) (appclient.Session, error) {
	s, err := appclient.Fetch(ctx, o.http, o.url, o.token)
	var refused *appclient.RefusedError
	switch {
	case errors.As(err, &refused):
		return s, &exitError{exitRefused, err}
	case err != nil:
		return s, &exitError{exitRefused, fmt.Errorf("%w (is `cafe up` running?)", err)}
	case o.client != "" && o.client != s.ClientID:
		return s, &exitError{exitUsage, fmt.Errorf("--client %s, but the token belongs to client %s", o.client, s.ClientID)}
	}
	o.client = s.ClientID
	return s, nil
}

// listen gets the app's session and subscribes to its results topic, and
// returns once the subscription is in place, so no result can slip past;
// stop disconnects.
func (o *orderOptions) listen(ctx context.Context, results chan<- []byte) (stop func(), err error) {
	s, err := o.session(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := s.MQTT(o.mqttURL, true)
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	if u, _ := url.Parse(cfg.URL); u != nil && mqttlink.TLSScheme(u.Scheme) {
		cfg.TLS.CA = o.caFile
	}
	// Only errors, such as a broker certificate this CA did not sign.
	link, err := mqttlink.New(cfg, slog.New(slog.NewTextHandler(o.stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	stop = link.Background()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := link.Subscribe(cctx, contracts.ResultsTopic(s.ClientID), 1, func(_ string, p []byte) {
		select {
		case results <- bytes.Clone(p):
		default:
		}
	}); err != nil {
		stop()
		return nil, &exitError{exitUsage, err}
	}
	if err := link.WaitConnected(cctx); err != nil {
		stop()
		return nil, &exitError{exitUsage, fmt.Errorf("cannot reach the MQTT broker at %s as app %s to receive the result: %w", contracts.RedactURL(s.MQTTURL), s.ClientID, err)}
	}
	return stop, nil
}

// submit posts the command and checks that it was accepted.
func submit(ctx context.Context, o orderOptions, body []byte, stdout io.Writer) error {
	u, err := url.JoinPath(o.url, "v1", "devices", o.device, "commands")
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("--url %q: %w", o.url, err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return &exitError{exitUsage, err}
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cafe-Timeout", o.timeout.String())
	res, err := o.http.Do(req)
	if err != nil {
		return &exitError{exitRefused, fmt.Errorf("cannot reach the cashier at %s: %w (is `cafe up` running?)", o.url, err)}
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusAccepted {
		fmt.Fprintln(stdout, strings.TrimSpace(string(answer)))
		hint := ""
		if ra := res.Header.Get("Retry-After"); ra != "" {
			hint = "; retry after " + ra + "s"
		}
		return &exitError{exitRefused, fmt.Errorf("the cashier answered %s%s", res.Status, hint)}
	}
	return nil
}
