// Package barista does the work: it takes commands from the commands queue
// (competing with any number of other baristas), acts on the devices over
// MQTT, and publishes each result to the results exchange.
//
// Consumes: the commands queue (contracts.Topology.CommandsQueue), with
// manual acks and a prefetch equal to Config.Concurrency; device replies on
// devices/+/replies/{route}/+ (only its own, by route), on a persistent MQTT
// session; and presence on devices/+/presence (retained), on a second, clean
// session (see Links).
//
// Produces: commands for devices on devices/{id}/commands/{route}/{command
// id} at QoS 1, payload the app's request bytes unchanged; one result per
// request with an id, on the results exchange, with contracts.ResultMeta
// headers and the command id as message id.
//
// Each command runs through a chain of steps (Middleware), outermost first:
//
//	Recover       a panic hands the command back instead of killing the worker
//	Deadline      past its deadline: CodeExpired, the device is not contacted;
//	              otherwise everything below is bounded by the deadline
//	CheckPresence the device's retained presence says offline: CodeDeviceOffline at once
//	Guard         the device's circuit breaker is open: CodeDeviceUnreachable at once;
//	              timeouts and refused publishes count against it, replies never do
//	Device        publish, wait for the reply: the reply bytes, CodeBadDeviceReply,
//	              CodeDeviceTimeout, or CodeDeviceUnreachable
//
// The ack policy is in ack.go, and only there: handle turns each delivery
// into an amqplink.Verdict, which the consumer settles. A command leaves the queue as
// a confirmed result (or, for a one-way command, once the MQTT broker took
// it) or as a dead letter; anything else returns it to the queue.
//
// A command may be delivered more than once (a barista died before its ack,
// or a result was not confirmed). Its repeat key, the command id in the last
// topic level, is the same every time, so a device can answer a repeat
// without acting twice; the app may then get the same result twice and
// dedupes by its MsgID.
package barista
