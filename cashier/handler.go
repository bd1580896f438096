package cashier

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/registry"
)

// Queue is what the cashier needs of RabbitMQ: take one message durably (nil
// only once the broker confirmed it) and say whether it can.
type Queue interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
	Ready() bool
}

// HeaderTimeout is the request header that sets a command's deadline.
const HeaderTimeout = "Cafe-Timeout"

// submission is the per-request scratch space, pooled: the body buffer and
// the parsed requests (slices of that buffer).
type submission struct {
	body bytes.Buffer
	reqs []contracts.Request
	errs []error
}

var submissions = sync.Pool{New: func() any { return &submission{reqs: make([]contracts.Request, 0, 8)} }}

// submit handles POST /v1/devices/{deviceID}/commands. The checks run from
// cheapest to dearest, and nothing is published unless all pass:
// token (401), device id (400), entitlement (403), Cafe-Timeout (400), body
// size (413), body in time (408), envelope (400), rate (429), an id still
// pending (409), broker (503).
func (s *Server) submit(c echo.Context) error {
	arrived := time.Now()
	o, status, e := s.checkHeaders(c)
	if e != nil {
		return s.fail(c, status, e)
	}
	client := o.client

	sub := submissions.Get().(*submission)
	defer func() {
		sub.body.Reset()
		clear(sub.reqs) // drop references into the body
		submissions.Put(sub)
	}()
	if status, err := s.readBody(c, &sub.body); err != nil {
		return s.fail(c, status, err)
	}
	reqs, batch, err := contracts.ParseBody(sub.body.Bytes(), s.cfg.MaxBatch, sub.reqs)
	sub.reqs = reqs
	if err != nil {
		var e *contracts.Error
		errors.As(err, &e)
		return s.fail(c, http.StatusBadRequest, e)
	}
	if err := o.dir.allow(client, arrived, len(reqs)); err != nil {
		return s.fail(c, http.StatusTooManyRequests, err)
	}
	if e := s.duplicates(c.Request().Context(), client.ID, reqs); e != nil {
		return s.fail(c, http.StatusConflict, e)
	}
	if !s.q.Ready() {
		s.m.commands.WithLabelValues("refused").Add(float64(len(reqs)))
		return s.fail(c, http.StatusServiceUnavailable, contracts.NewError(contracts.CodeUnavailable,
			contracts.Detail{Reason: "RabbitMQ is not reachable from this cashier; nothing was queued, retry later"}))
	}

	meta := contracts.CommandMeta{ClientID: client.ID, DeviceID: o.deviceID, Deadline: arrived.Add(o.timeout), AcceptedAt: arrived, Notices: o.notices}
	errs := s.publishAll(c.Request().Context(), meta, reqs, sub)
	if refused := countErrs(errs); refused > 0 {
		s.m.commands.WithLabelValues("accepted").Add(float64(len(reqs) - refused))
		s.m.commands.WithLabelValues("refused").Add(float64(refused))
		return s.refuse(c, reqs, errs, batch)
	}
	s.m.commands.WithLabelValues("accepted").Add(float64(len(reqs)))
	s.m.requests.WithLabelValues("202").Inc()
	setLocations(c.Response().Header(), reqs)
	err = c.Blob(http.StatusAccepted, echo.MIMEApplicationJSON, acceptedBody(client.ID, reqs))
	s.m.accept.Observe(time.Since(arrived).Seconds())
	return err
}

// order is what the checks of a submission's headers found: who sends it,
// for which device, with which deadline, under which registry.
type order struct {
	dir      *directory
	client   *registry.Client
	deviceID string
	timeout  time.Duration
	notices  bool // Cafe-Events: status
}

// checkHeaders runs the checks that need no body: token (401, or 400 for
// more than one Authorization header), device id (400), entitlement (403),
// registration (404), Cafe-Timeout (400). Entitlement comes before
// registration, so a client learns nothing of devices it may not command.
func (s *Server) checkHeaders(c echo.Context) (order, int, *contracts.Error) {
	r := c.Request()
	dir := s.dir.Load()
	client, status, e := s.authenticate(c, dir)
	if e != nil {
		return order{}, status, e
	}
	deviceID := c.Param("deviceID")
	if !contracts.ValidDeviceID(deviceID) {
		return order{}, http.StatusBadRequest, contracts.NewError(contracts.CodeInvalidRequest,
			contracts.Detail{Field: "deviceID", Reason: "device id must be 1 to 128 characters from A-Z a-z 0-9 . _ : -, and not . or .."})
	}
	if !client.MayCommand(deviceID) {
		s.refused(c, client.ID, "may not command this device")
		return order{}, http.StatusForbidden, contracts.NewError(contracts.CodeForbidden,
			contracts.Detail{Field: "deviceID", Reason: "client " + client.ID + " may not command this device"})
	}
	if _, ok := dir.reg.Device(deviceID); !ok {
		return order{}, http.StatusNotFound, contracts.NewError(contracts.CodeUnknownDevice,
			contracts.Detail{Field: "deviceID", DeviceID: deviceID, Reason: "no device " + deviceID + " is registered; register it with `cafe devices add " + deviceID + "`"})
	}
	timeout, perr := s.timeout(r.Header)
	if perr != nil {
		return order{}, http.StatusBadRequest, perr
	}
	notices, e := cafeEvents(r.Header)
	if e != nil {
		return order{}, http.StatusBadRequest, e
	}
	return order{dir: dir, client: client, deviceID: deviceID, timeout: timeout, notices: notices}, 0, nil
}

// authenticate finds the client of the request's bearer token: 401 for
// none or an unknown one, 400 for more than one Authorization header.
func (s *Server) authenticate(c echo.Context, dir *directory) (*registry.Client, int, *contracts.Error) {
	r := c.Request()
	if len(r.Header.Values(echo.HeaderAuthorization)) > 1 {
		s.refused(c, "", "more than one Authorization header")
		return nil, http.StatusBadRequest, contracts.NewError(contracts.CodeInvalidRequest,
			contracts.Detail{Field: "Authorization", Reason: "send the Authorization header once"})
	}
	client, ok := dir.reg.Lookup(bearer(r.Header.Get(echo.HeaderAuthorization)))
	if !ok {
		s.refused(c, "", "no or unknown bearer token")
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="cafe"`)
		return nil, http.StatusUnauthorized, contracts.NewError(contracts.CodeUnauthorized,
			contracts.Detail{Field: "Authorization", Reason: "send Authorization: Bearer <token> with a token from the registry"})
	}
	return client, 0, nil
}

// refused logs a refusal of who the requester is (401, 403): with the
// client id where known and the remote address, never the token, and at
// most once a second at warn level (the rest at debug; the metrics count
// every one).
func (s *Server) refused(c echo.Context, clientID, why string) {
	attrs := []any{"remote", c.RealIP(), "path", c.Request().URL.Path, "why", why}
	if clientID != "" {
		attrs = append(attrs, "client_id", clientID)
	}
	logged := false
	s.warnAuth.Do(func() {
		logged = true
		s.log.Warn("request refused (further ones this second at debug level)", attrs...)
	})
	if !logged {
		s.log.Debug("request refused", attrs...)
	}
}

// publishAll publishes every request, in parallel for a batch so that their
// confirms overlap, and returns one error slot per request.
func (s *Server) publishAll(ctx context.Context, meta contracts.CommandMeta, reqs []contracts.Request, sub *submission) []error {
	sub.errs = append(sub.errs[:0], make([]error, len(reqs))...)
	if len(reqs) == 1 {
		sub.errs[0] = s.publish(ctx, meta, reqs[0])
		return sub.errs
	}
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { sub.errs[i] = s.publish(ctx, meta, reqs[i]) })
	}
	wg.Wait()
	return sub.errs
}

func (s *Server) publish(ctx context.Context, meta contracts.CommandMeta, req contracts.Request) error {
	meta.CommandID = contracts.NewCommandID()
	meta.MsgID = string(req.ID)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConfirmTimeout)
	defer cancel()
	start := time.Now()
	err := s.q.Publish(ctx, s.top.CommandsExchange(), contracts.RoutingKeyCommand, amqp.Publishing{
		MessageId: meta.CommandID, // no content-type or timestamp property: see contracts.ContentTypeJSON
		Headers:   meta.Headers(),
		Body:      req.Raw, // the app's bytes, as they arrived
	})
	if err == nil {
		s.m.confirm.Observe(time.Since(start).Seconds())
		s.notify(meta, contracts.NoticeQueued)
		return nil
	}
	s.refusal(meta, err)
	// Under overload this happens for every request: warn at most once a
	// second (the metrics count every one), and keep the rest at debug.
	logged := false
	s.warnRefused.Do(func() {
		logged = true
		s.log.Warn("command not queued (further ones this second at debug level)", "client_id", meta.ClientID, "device_id", meta.DeviceID, "msg_id", meta.MsgID, "err", err)
	})
	if !logged {
		s.log.Debug("command not queued", "client_id", meta.ClientID, "device_id", meta.DeviceID, "msg_id", meta.MsgID, "err", err)
	}
	return err
}

// refuse answers 503 for a submission RabbitMQ did not fully confirm. For a
// batch, data lists the requests that were confirmed anyway (their results
// will come) and the refused ones, to resubmit, by id and by position in the
// batch (one-way commands have no id). A refused command may still have
// reached the queue (a confirm can be lost after the broker took it):
// resubmitting it can yield two results with one id, which apps dedupe.
func (s *Server) refuse(c echo.Context, reqs []contracts.Request, errs []error, batch bool) error {
	type partial struct {
		Reason          string  `json:"reason"`
		Accepted        []rawID `json:"accepted"`
		AcceptedIndexes []int   `json:"accepted_indexes"`
		Refused         []rawID `json:"refused"`
		RefusedIndexes  []int   `json:"refused_indexes"`
	}
	var first error
	d := partial{Accepted: []rawID{}, AcceptedIndexes: []int{}, Refused: []rawID{}, RefusedIndexes: []int{}}
	for i, err := range errs {
		if err == nil {
			d.Accepted = append(d.Accepted, rawID(reqs[i].ID))
			d.AcceptedIndexes = append(d.AcceptedIndexes, i)
			continue
		}
		if first == nil {
			first = err
		}
		d.Refused = append(d.Refused, rawID(reqs[i].ID))
		d.RefusedIndexes = append(d.RefusedIndexes, i)
	}
	d.Reason = unavailable(first) + "; not known to be queued, retry later"
	if !batch {
		return s.fail(c, http.StatusServiceUnavailable, contracts.NewError(contracts.CodeUnavailable, contracts.Detail{Reason: d.Reason}))
	}
	return s.fail(c, http.StatusServiceUnavailable, contracts.NewError(contracts.CodeUnavailable, d))
}

// unavailable says in the app's terms why RabbitMQ did not take a command.
// The full error, which names broker internals, goes to the log only.
func unavailable(err error) string {
	switch {
	case errors.Is(err, amqplink.ErrNacked):
		return "the commands queue is full or RabbitMQ refused the command"
	case errors.Is(err, amqplink.ErrBlocked):
		return "RabbitMQ is blocking publishers (memory or disk alarm)"
	case errors.Is(err, amqplink.ErrConfirmTimeout):
		return "RabbitMQ did not confirm the command in time"
	case errors.Is(err, amqplink.ErrReturned):
		return "no queue is bound for commands on RabbitMQ"
	}
	return "RabbitMQ is not reachable from this cashier"
}

// rawID marshals as the app's id token (null for a notification).
type rawID []byte

func (r rawID) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

func countErrs(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

// setLocations names where each accepted command's record is: Location
// for a single command; for a batch, one Link header listing them all
// (rel="status"), in the batch's order (HTTP allows one Location only).
func setLocations(h http.Header, reqs []contracts.Request) {
	var links []string
	for _, r := range reqs {
		if !r.Notification() {
			links = append(links, CommandPath(r.ID))
		}
	}
	switch {
	case len(reqs) == 1 && len(links) == 1:
		h.Set(echo.HeaderLocation, links[0])
	case len(links) > 0:
		h.Set("Link", "<"+strings.Join(links, `>; rel="status", <`)+`>; rel="status"`)
	}
}

// acceptedBody is the 202 body: {"client_id":"app-1","accepted":[7,"a"],"notifications":1}.
// accepted lists the ids of the requests, as the app sent them; one-way
// commands have no id and are counted in notifications.
func acceptedBody(clientID string, reqs []contracts.Request) []byte {
	b := make([]byte, 0, 64+len(clientID)+16*len(reqs))
	b = append(b, `{"client_id":"`...)
	b = append(b, clientID...) // the charset needs no escaping
	b = append(b, `","accepted":[`...)
	n, first := 0, true
	for _, r := range reqs {
		if r.Notification() {
			n++
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, r.ID...)
	}
	b = append(b, `],"notifications":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '}')
}

// timeout reads Cafe-Timeout: a Go duration, more than 0 and at most MaxTimeout.
func (s *Server) timeout(h http.Header) (time.Duration, *contracts.Error) {
	values := h.Values(HeaderTimeout)
	if len(values) == 0 {
		return s.cfg.DefaultTimeout, nil
	}
	bad := func(reason string) (time.Duration, *contracts.Error) {
		return 0, contracts.NewError(contracts.CodeInvalidRequest, contracts.Detail{Field: HeaderTimeout, Reason: reason})
	}
	if len(values) > 1 {
		return bad("send the header once")
	}
	d, err := time.ParseDuration(strings.TrimSpace(values[0]))
	if err != nil {
		return bad("want a Go duration such as 5s or 1500ms")
	}
	if d <= 0 || d > s.cfg.MaxTimeout {
		return bad("want more than 0 and at most " + s.cfg.MaxTimeout.String())
	}
	return d, nil
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// fail writes a JSON-RPC error response with id null (the pipeline could
// not take the request, so no request id is echoed).
func (s *Server) fail(c echo.Context, status int, e *contracts.Error) error {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.cfg.RetryAfter.Seconds()))))
	}
	s.m.requests.WithLabelValues(strconv.Itoa(status)).Inc()
	body := contracts.ErrorResponse(nil, e)
	if bodyLeft(c) {
		// The connection ends after this answer, and with its length the
		// answer is whole when guardBody sends it ahead of the rest of the
		// request's body.
		h := c.Response().Header()
		h.Set(echo.HeaderConnection, "close")
		h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	}
	return c.Blob(status, echo.MIMEApplicationJSON, body)
}
