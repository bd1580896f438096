package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
)

// defaultTimeout is a command's deadline without Cafe-Timeout, as cafe's.
const defaultTimeout = 30 * time.Second

// serveHTTP binds the address and serves the API until ctx is done.
func (p *plain) serveHTTP(ctx context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.httpAddr)
	if err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/v1/devices/:deviceID/commands", p.submit)
	e.POST("/v1/sessions", p.session)
	e.GET("/readyz", func(c echo.Context) error { return c.String(http.StatusOK, "ready\n") })
	prom := prometheus.NewRegistry()
	prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(prom, promhttp.HandlerOpts{})))
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
	p.wg.Go(func() { _ = srv.Serve(ln) })
	p.wg.Go(func() {
		<-ctx.Done()
		_ = srv.Close()
	})
	return nil
}

// submit is cafe's POST /v1/devices/{deviceID}/commands without its
// extras: bearer token, entitlement, registration, Cafe-Timeout, the
// envelope; each request published with its own confirm wait; 202 once
// all are confirmed.
func (p *plain) submit(c echo.Context) error {
	arrived := time.Now()
	reg := p.reg.Load()
	client, ok := reg.Lookup(bearer(c.Request().Header.Get(echo.HeaderAuthorization)))
	if !ok {
		return fail(c, http.StatusUnauthorized, contracts.CodeUnauthorized)
	}
	device := c.Param("deviceID")
	if !contracts.ValidDeviceID(device) {
		return fail(c, http.StatusBadRequest, contracts.CodeInvalidRequest)
	}
	if !client.MayCommand(device) {
		return fail(c, http.StatusForbidden, contracts.CodeForbidden)
	}
	if _, ok := reg.Device(device); !ok {
		return fail(c, http.StatusNotFound, contracts.CodeUnknownDevice)
	}
	timeout := defaultTimeout
	if v := c.Request().Header.Get("Cafe-Timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fail(c, http.StatusBadRequest, contracts.CodeInvalidRequest)
		}
		timeout = d
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, contracts.MaxBodyBytes))
	if err != nil {
		return fail(c, http.StatusRequestEntityTooLarge, contracts.CodeTooLarge)
	}
	reqs, _, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, nil)
	if err != nil {
		var e *contracts.Error
		errors.As(err, &e)
		return c.JSONBlob(http.StatusBadRequest, contracts.ErrorResponse(nil, e))
	}
	meta := contracts.CommandMeta{ClientID: client.ID, DeviceID: device, Deadline: arrived.Add(timeout), AcceptedAt: arrived}
	ids := make([]string, 0, len(reqs))
	for _, r := range reqs {
		meta.CommandID, meta.MsgID = contracts.NewCommandID(), string(r.ID)
		ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
		err := p.publish(ctx, p.commands(), amqp.Publishing{MessageId: meta.CommandID, ContentType: contracts.ContentTypeJSON, Timestamp: arrived, Headers: meta.Headers(), Body: r.Raw})
		cancel()
		if err != nil {
			return fail(c, http.StatusServiceUnavailable, contracts.CodeUnavailable)
		}
		if !r.Notification() {
			ids = append(ids, string(r.ID))
		}
	}
	return c.JSONBlob(http.StatusAccepted, []byte(`{"client_id":"`+client.ID+`","accepted":[`+strings.Join(ids, ",")+`],"notifications":`+strconv.Itoa(len(reqs)-len(ids))+`}`))
}

// session is cafe's POST /v1/sessions: the app's MQTT login.
func (p *plain) session(c echo.Context) error {
	client, ok := p.reg.Load().Lookup(bearer(c.Request().Header.Get(echo.HeaderAuthorization)))
	if !ok {
		return fail(c, http.StatusUnauthorized, contracts.CodeUnauthorized)
	}
	return c.JSON(http.StatusOK, map[string]string{
		"mqtt_url": withoutUser(p.cfg.mqttURL), "username": client.ID, "password": p.key.AppPassword(client.ID, client.TokenSHA256),
		"client_id": client.ID, "results_topic": contracts.ResultsTopic(client.ID),
	})
}

func bearer(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func fail(c echo.Context, status int, code contracts.Code) error {
	return c.JSONBlob(status, contracts.ErrorResponse(nil, contracts.NewError(code, nil)))
}
