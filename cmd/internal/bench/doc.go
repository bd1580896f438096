// Package bench is `cafe bench`: an instrument of the running pipeline's
// speed, measured against the brokers' own floor in the same run.
//
// It is a client of the pipeline like any app: it submits JSON-RPC commands
// to the cashier over HTTP and receives their results on the app's MQTT
// topic, clients/{client}/results, which it subscribes to at QoS 1 before
// sending anything. Each command's id is "{run}.{phase}.{seq}", so its
// result finds the command's record directly, and results of other apps on
// the same client are recognised and left alone. The devices are a
// devicesim fleet of the bench's own, bench-{run}-N, started in the bench's
// process, awaited online, stopped at the end, and their retained presence
// cleared afterwards.
//
// # What is measured
//
// End-to-end latency is from a command's submission (HTTP POST) to its
// result's arrival on MQTT. The cashier's own answer (202) is measured too.
// Latencies go into HdrHistograms (three significant digits) and are
// reported as p50, p90, p99, p99.9 and max. Rates run from the first
// measured command's due time to the last answer of their kind, so a
// pipeline that falls behind lowers them. A command is missing when it was
// accepted (202) and its result had not come when the drain (--drain) ended;
// a duplicate is a second result for the same id (allowed by the pipeline's
// at-least-once delivery, and counted). Errors are counted by kind: the
// HTTP status of a refusal ("http 503"), a transport failure, or the
// JSON-RPC error code of a result ("-32001 device timeout").
//
// # Open and closed loop, and coordinated omission
//
// In the open loop (--rate) commands are due on a fixed schedule, slot i at
// start + i·batch/rate, and are sent then whatever the pipeline does: a
// sender that comes back late sends its next slot at once. Latency counts
// from the time the command was due, not from when it was actually sent. A
// load generator that measures from the actual send "coordinates" with the
// system: while the system stalls it sends nothing and so records nothing
// of the stall, and a one-second stall at 1000/s shows up as one slow
// request instead of a thousand. The report keeps both figures
// (latency and latency_uncorrected); when they differ much the senders
// could not keep to the schedule (add --http-workers).
//
// In the closed loop (--concurrency) each of C senders sends, waits for the
// result (or, with --cashier-only, the 202), and sends again: C commands
// are always in flight. It measures capacity at that concurrency, and its
// latency is the service time under that load; it cannot show what an app
// sending at a fixed rate would see. The knee (--knee) is the open loop's
// answer to "how fast": the rate goes up by --knee-factor every --knee-step
// until a step's p99 exceeds --knee-p99, a result goes missing, an error
// appears, or completions fall below 95% of the offered rate. A step that
// misses is run once more at the same rate, so that one stall from
// elsewhere on the machine does not end the search; the knee is the
// highest step that met all of these.
//
// # The floor: the hops a command crosses
//
// With --floor the bench first measures, on the same brokers, with the same
// message size and with the pipeline's own client code (amqplink,
// mqttlink), the hops every command crosses, alone:
//
//	commands queue    cashier → barista   one AMQP hop: publish with confirm to a quorum queue, consume, ack
//	barista ↔ device                      one MQTT QoS 1 round trip (command out, reply back)
//	results queue     barista → caller    one AMQP hop
//	caller → app                          one MQTT QoS 1 one way, taken as half a round trip
//
// The AMQP hop uses a private topology (prefix bench-floor-{run}, the
// pipeline's queue arguments, no length limit), deleted afterwards: with
// 256 messages in flight it measures publish-with-confirm alone (no
// consumer: what the cashier does) and the whole hop (published, confirmed,
// consumed and acked); one message at a time it measures the time from
// publish to delivery. The MQTT hop is two clients, A publishing, B echoing
// each message back (from a goroutine, as a device does): 256 round trips
// in flight, then one at a time. The one-way hop counts half the round
// trip's latency and twice its rate (one publish instead of two). HTTP into
// the cashier is not a broker hop: it is part of the pipeline's own cost.
//
// Then the pipeline sends --lone-count commands one at a time (the lone
// phase), then runs the load. The floor is always measured in the same
// invocation, just before the pipeline: figures from different runs are
// never compared, and report.json holds both.
//
// # TLS
//
// The bench speaks TLS wherever its URLs say so: an https:// --url trusts
// --ca-file (CAFE_CA_FILE; by default the local CA of `cafe setup`) besides
// the system's store; an ssl:// --mqtt-url (the app, the devices, the MQTT
// floor) and an amqps:// --amqp-url (the AMQP floor) take the links' own
// TLS files (--mqtt-ca-file, --amqp-ca-file, ...). The floor then measures
// the hops over TLS too, so the targets compare like with like.
//
// # Targets
//
//	lone command   pipeline p50, one at a time  ≤ 2 × (Σ over the hops of their p50 + device latency)
//	throughput     results per second          ≥ 50% of the hops in series, 1/Σ(1/rate_i)
//	cashier alone  202s per second             ≥ 70% of RabbitMQ's publish-with-confirm rate (--cashier-only)
//
// Each is printed with its ratio and PASS or FAIL. An open-loop run that
// kept up with an offered rate below a throughput target measured that
// rate, not the pipeline's capacity: its verdict is INCONCLUSIVE. The
// throughput comes from the knee with --knee, else from the main run (use
// --concurrency for capacity). `cafe bench` exits 1 when a target failed
// or results went missing.
//
// # Output
//
// A table on stdout; one progress line per second on stderr (elapsed, sent,
// accepted, results, in flight, p50 and p99 of the last second); and in
// --out: report.json (Report), latency-over-time.png (every command by when
// it was due, a sample of at most 20 000, with per-second p50, p99 and
// max), throughput-over-time.png, latency-histogram.png, and knee.png with
// --knee. With --scrape, each service's /metrics is read every second for
// process_resident_memory_bytes (RSS at the end and the highest seen) and
// process_cpu_seconds_total (CPU used during the run).
//
// # CPU per command
//
// At the start and the end of every phase the bench reads the CPU time of
// each process the commands go through, and divides what each used in the
// phase (warmup and drain included) by the commands the phase completed
// (results; 202s when cashier-only): cafe's services (the --scrape targets,
// found on this machine by the port of their metrics URL and read from
// /proc/PID/stat, else from their process_cpu_seconds_total), RabbitMQ and
// Mosquitto (the processes listening on the ports of --amqp-url and
// --mqtt-url, read from /proc: beam.smp and mosquitto), PostgreSQL (the
// process on --postgres-url's port and its children, the backends; a
// backend that exits within the phase is not counted) and the bench
// itself. For processes read from /proc it also gives the read- and
// write-family system calls per command (/proc/PID/io syscr + syscw; that
// file needs the process's user or root), and for cafe's services their Go
// heap allocations per command (go_memstats_mallocs_total of their
// /metrics). A process that cannot be found
// is reported with the reason, and the others still are. For every system
// call, by kind, run strace on a service while a fixed number of commands
// goes through, e.g. `strace -c -f -p PID` during `cafe bench --count
// 2000`, and divide by the count.
//
// # The ledger
//
// With the same readings (ledger.go) each phase reports what the ledger
// did: the events written and their lag p50 and p99, from the difference
// of cafe_ledger_lag_seconds on the --scrape targets (summed over the
// ledgers; quantiles are bucket bounds), read at the end once the count
// holds still for 250 ms (at most 10 s: the ledger writes a command's last
// events after its result arrived); and the rows and bytes the phase added
// to the ledger's tables at --postgres-url (count(*) and
// pg_total_relation_size before and after), per command completed. With
// --knee the knee's step shows the lag under the knee load. The database
// is shared: rows written by anything else in the phase count too.
//
// The bench runs in its own process, with the devices, on the same machine
// as the pipeline and the brokers: on a small machine it competes with them
// for CPU, and its figures include that.
package bench
