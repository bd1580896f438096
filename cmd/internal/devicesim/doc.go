// Package devicesim simulates a fleet of cafe devices that follow the device
// contract (contracts/asyncapi.yaml; the README's "Contracts") to the letter. Tests, demos and benchmarks use it as
// the far end of the pipeline; `cafe up` and cmd/devicesim embed it.
//
// # What a device consumes and produces
//
// Each device is an MQTT connection of its own (user name and client id =
// its device id, password its secret when the fleet is given secrets; clean
// session, the keep-alive Config.KeepAlive). It
//
//   - subscribes at QoS 1 to devices/{id}/commands/#;
//   - on every connection publishes a retained {"online":true,"sim":true}
//     on devices/{id}/presence, having set the retained last will
//     {"online":false,"sim":true} there; on a graceful stop (GoOffline, or
//     the end of Run) it publishes the retained offline presence itself and
//     disconnects;
//   - answers each command, a JSON-RPC 2.0 request, at QoS 1 on the
//     command's topic with "commands" replaced by "replies" and the levels
//     after it copied, with the request's raw id token copied byte for byte.
//     Notifications (no id) are run and never answered.
//
// # Methods
//
//	echo    result: the params as sent (raw bytes), or null
//	sleep   params {"ms":N} or [N]; after N ms (capped at MaxSleep), result {"slept_ms":N}; bad params: -32602
//	fail    error {"code":1000,"message":"simulated failure","data":<params, or left out>}
//	never   no reply, ever (it still counts as executed)
//	other   -32601 Method not found
//
// A payload that is not a valid request gets -32700 (not JSON) or -32600 with
// id null; one over MaxCommandBytes gets -32600 without being parsed.
// Config.Latency plus a random 0..Config.Jitter delays every reply;
// Config.ErrorRate answers that fraction of requests with the "fail" error
// instead of running them. Random choices come from one stream per device,
// seeded from Config.Seed and the device's position, so a run with the same
// seed and the same commands makes the same choices.
//
// # Repeat keys
//
// The last level of a command topic is its repeat key (contracts/topics.go).
// A device runs a key once and remembers the reply. A repeat (a redelivery,
// maybe from another barista and so on another reply topic) is not run
// again: it gets the same reply bytes, on its own reply topic, after the
// first execution finished if that is still running. Keys are remembered
// oldest-out-first, Config.KeyMemory per fleet split evenly over the devices
// and at most RememberedReplyBytes of replies per fleet; a key is kept
// across GoOffline/GoOnline. A command without a level after commands/
// (devices/{id}/commands exactly) is run without deduplication, and its
// reply has nowhere to go (counted as no_reply_topic). Work cut short by
// going offline is forgotten, so a redelivery runs it afresh.
//
// # Statistics
//
// Fleet.Stats returns per-device counters and their totals; the binary
// prints them as a table on exit and, with --stats-file, writes them as JSON:
//
//	{
//	  "seed": 42,
//	  "online": 0,
//	  "totals": {
//	    "received": 5,          every message on a commands topic; exactly one of the next five:
//	    "executed": 3,          valid requests run (first delivery), incl. notifications and "never"
//	    "failures_injected": 0, requests failed by the error rate instead of run
//	    "duplicates": 1,        repeated keys answered from memory
//	    "invalid": 1,           not a valid request: not JSON, not a request, too large
//	    "dropped": 0,           arrived while going offline; ignored
//	    "notifications": 1,     of executed, those without an id
//	    "replies_sent": 4,      replies acknowledged by the broker, repeats included
//	    "errors_replied": 1,    of replies_sent, those carrying an error object (any code)
//	    "reply_failures": 0,    replies the broker did not acknowledge
//	    "abandoned": 0,         replies, and repeats waiting for one, cut short by going offline
//	    "odd_topics": 0,        commands not on devices/{id}/commands/{route}/{key} (still handled)
//	    "no_reply_topic": 0     replies with no topic to go to
//	  },
//	  "devices": [ {"id": "sim-1", "online": false, "received": 5, ...same counters...} ]
//	}
//
// received = executed + failures_injected + duplicates + invalid + dropped
// always holds once the work in progress is done.
//
// # The MQTT session, and what a device costs
//
// A device's MQTT session is not a general client (such as paho's, which
// takes several goroutines, timers and buffers per connection) but the
// little a device needs, with its packets encoded and decoded by paho's
// packets package (MQTT 3.1.1): one goroutine per device that connects
// (CONNECT with the last will, clean session; SUBSCRIBE at QoS 1), then
// reads; QoS 1 publishes that wait for their PUBACK (replies and presence);
// no buffer while idle. What every device shares is the fleet's: one pinger
// that sends each idle connection its PINGREQ (Config.KeepAlive; a missing
// PINGRESP drops the connection, so the broker publishes the last will),
// and a bound on connection attempts in progress, so that a fleet starting
// at once or coming back after its broker restarted queues up instead of
// flooding the broker. A lost connection fails the replies waiting for
// their PUBACK (reply_failures) and is made again after a backoff (100 ms
// doubling to Config.MaxBackoff, with jitter). An incoming packet larger
// than MaxPacketBytes ends the connection instead of being read.
//
// One device costs about 7 KB online (BenchmarkFleetMemory: 7.2 KB of
// resident memory at 8,000 devices before the binary's own measures, of
// which about 4 KB is its goroutine's stack; the binary keeps about 9 KB,
// README "Fleet test") and one open file. A process may open ulimit -n
// files, so larger fleets run as several processes, each with its own
// range of ids (First, Count) and broker.
//
// # Lifecycle
//
// New validates a Config; Run connects every device and serves until its
// context ends, then takes every device offline gracefully and returns.
// WaitOnline waits for the whole fleet to be up; GoOffline and GoOnline take
// single devices down and back up for fault tests. MQTT handlers never
// block: each command is worked on in a goroutine of its session, and going
// offline cancels and waits for all of them. Run takes the devices offline
// at most 256 at a time.
package devicesim
