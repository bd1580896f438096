package barista

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/mqttlink"
)

// MQTT is what the barista needs of the MQTT broker: its subscriptions, a
// way to send commands, and to know when it can work at all (the gate on
// taking commands: connected, with the retained presence handled).
type MQTT interface {
	Subscribe(ctx context.Context, filter string, qos byte, h mqttlink.Handler) error
	Publish(ctx context.Context, m mqttlink.Message) error
	amqplink.Gate
}

// Device is the last step: it publishes the app's request bytes unchanged
// at QoS 1 on devices/{id}/commands/{route}/{command id} and waits for the
// reply until the context's deadline (the command's, set by Deadline).
//
// Outcomes: the device's reply bytes (OutcomeReply) when they are a valid
// JSON-RPC response to the command, whatever they say; CodeBadDeviceReply
// when they are not; CodeDeviceTimeout when the deadline passes;
// CodeDeviceUnreachable when the MQTT broker would not take the command in
// time. A one-way command is done once the broker has taken it. When the
// context is cancelled for another reason than the deadline (shutdown), the
// command is handed back with an error.
//
// hooks.Sent (if set) is told once the MQTT broker took the command,
// hooks.ReplyTime how long the device took to answer.
func Device(mqtt MQTT, replies *Replies, route string, maxReply int, hooks DeviceHooks) Handler {
	return func(ctx context.Context, cmd *Command) (Result, error) {
		msg := mqttlink.Message{
			Topic:   contracts.CommandTopic(cmd.Meta.DeviceID, route, cmd.Meta.CommandID),
			Payload: cmd.Request.Raw,
			QoS:     1,
		}
		var reply <-chan []byte
		if !cmd.Request.Notification() {
			var done func()
			reply, done = replies.Expect(cmd.Meta.CommandID, cmd.Meta.DeviceID)
			defer done()
		}
		sent := time.Now()
		if err := mqtt.Publish(ctx, msg); err != nil {
			if handBack(ctx) {
				return Result{}, err
			}
			return fail(cmd, contracts.CodeDeviceUnreachable, "the MQTT broker did not take the command in time: "+err.Error()), nil
		}
		if hooks.Sent != nil {
			hooks.Sent(cmd)
		}
		if reply == nil {
			return Result{Outcome: contracts.OutcomeSent}, nil
		}
		select {
		case payload := <-reply:
			if hooks.ReplyTime != nil {
				hooks.ReplyTime(time.Since(sent))
			}
			if len(payload) > maxReply {
				return fail(cmd, contracts.CodeBadDeviceReply, "the reply is "+strconv.Itoa(len(payload))+" bytes, over the limit of "+strconv.Itoa(maxReply)), nil
			}
			if err := contracts.CheckReply(payload, cmd.Request.ID); err != nil {
				return fail(cmd, contracts.CodeBadDeviceReply, "the device's reply is not a JSON-RPC response to this command: "+reasonOf(err)), nil
			}
			return Result{Body: payload, Outcome: contracts.OutcomeReply}, nil
		case <-ctx.Done():
			if handBack(ctx) {
				return Result{}, context.Cause(ctx)
			}
			return fail(cmd, contracts.CodeDeviceTimeout, "no reply from the device before the command's deadline"), nil
		}
	}
}

// DeviceHooks are what Device reports as it goes; any may be nil.
type DeviceHooks struct {
	Sent      func(*Command)      // the MQTT broker took the command
	ReplyTime func(time.Duration) // the device answered after this
}

// handBack reports whether ctx ended for another reason than the command's
// deadline: the barista is shutting down, so the command goes back to the
// queue rather than failing.
func handBack(ctx context.Context) bool {
	return ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// reasonOf is the reason inside a contracts error, or the error's text.
func reasonOf(err error) string {
	var e *contracts.Error
	var d contracts.Detail
	if errors.As(err, &e) && json.Unmarshal(e.Data, &d) == nil && d.Reason != "" {
		return d.Reason
	}
	return err.Error()
}
