// Package scale sizes a tier of cafe's workers by its queue: the
// supervisor behind `cafe scale` (and `cafe up --autoscale`) runs the
// real barista (or caller) binary as child processes and keeps their
// number between a minimum and a maximum from what the commands (or
// results) queue says.
//
// # What it reads
//
// Every interval it observes the queue (see Source): ready messages and
// consumers by a passive declare over AMQP, which needs no plugin; and,
// when RabbitMQ's management API answers (rabbitmq_management, logged in as
// cafe-ops, which needs the monitoring tag `cafe setup` gives it), the
// unacknowledged count and the rates in (publish) and out (ack). Without
// the management API the rates are estimated from the change in ready
// messages between two observations.
//
// The age of the oldest waiting command is estimated, never read: a
// quorum queue cannot be peeked without a delivery (a get and requeue
// counts against x-delivery-limit and would dead-letter a command peeked
// often enough), and RabbitMQ does not report a quorum queue's head
// timestamp. With messages arriving at rate λ, the R ready ones span about
// R/λ seconds of arrivals, so the oldest is about R/λ old (first in, first
// out). With no arrivals the estimate is unknown (0) and the drain time
// alone decides.
//
// # How it decides
//
// Decide is the rule, a pure function with table tests: scale up at once
// when the backlog (ready + unacked) would not drain within the target
// time at the current rates, or the oldest message is older than the
// target: to as many replicas as the learnt capacity needs (what one
// replica finished per second while the queue had messages waiting), or
// double while that is not known; after a change, the next scale-up waits
// for it to settle (two intervals, at least the 5s the management API takes
// to sample its rates), or stale figures would add a replica every
// interval. With nothing ready the replicas are keeping up, whatever they
// hold, and no scale-up is made. Scale down one replica at a time, only
// once the quiet period has passed since the last change and since the
// last pressure, and only when fewer replicas would still keep up. Never
// below the minimum nor above the maximum. Every decision that changes
// the count is logged with its reason (and every hold at debug level).
//
// # How it acts
//
// Each child gets the supervisor's environment, its own CAFE_BARISTA_ROUTE
// (a barista's route must be unique) and CAFE_HTTP_ADDR=127.0.0.1:0 (its
// own ops port). A scale-down sends SIGTERM to the newest child: the
// barista finishes the commands in hand within its CAFE_BARISTA_GRACE and
// hands the rest back to the queue, so nothing is lost; a child still
// running after its grace and a margin is killed (RabbitMQ then requeues
// what it held). A child that exits unasked is replaced at once. On
// shutdown every child gets SIGTERM and the supervisor waits for them all.
//
// # The step-load benchmark
//
// stepload_test.go (build tag scalebench, `task bench:scale`) offers the
// supervised baristas a stepped load and draws docs/scale-step.png; see
// the README's "Scaling" section for its figures.
//
// # Metrics
//
// On its ops port (/metrics): cafe_scale_desired, cafe_scale_running,
// cafe_scale_backlog, cafe_scale_drain_seconds (estimate, +Inf when not
// draining), cafe_scale_oldest_seconds (estimate), and
// cafe_scale_decisions_total{direction="up|down|replace"}, all with the
// label role (barista or caller).
package scale
