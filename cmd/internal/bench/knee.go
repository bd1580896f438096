package bench

import (
	"context"
	"fmt"
	"strings"
)

// runKnee steps the open-loop rate up by cfg.KneeFactor, each step
// cfg.KneeStep long and drained before the next, until a rate misses the
// criteria of kneeOK twice in a row (a step that misses is run once more
// at the same rate). The knee is the last step that met them.
func runKnee(ctx context.Context, s *session, cfg Config, note func(string)) *KneeReport {
	k := &KneeReport{P99LimitMS: ms(cfg.KneeP99), Factor: cfg.KneeFactor, StepS: cfg.KneeStep.Seconds(), Knee: -1}
	rate := cfg.Rate
	if rate == 0 { // a comparison: the main run is closed loop
		rate = DefaultKneeStart
	}
	retried := false
	for step := 1; step <= cfg.KneeMaxSteps; step++ {
		if ctx.Err() != nil {
			k.StopReason = "interrupted"
			return k
		}
		name := fmt.Sprintf("knee%d", step)
		if retried {
			name += "b"
		}
		r := s.measure(ctx, phaseSpec{
			Name: name, Rate: rate, Batch: cfg.Batch, Duration: cfg.KneeStep, Warmup: cfg.Warmup,
			CashierOnly: cfg.CashierOnly, Drain: cfg.Drain,
		})
		k.Steps = append(k.Steps, r)
		ok, why := kneeOK(r, cfg)
		verdict := "ok"
		switch {
		case !ok && !retried && ctx.Err() == nil:
			verdict = "missed (" + why + "); trying the same rate once more"
		case !ok:
			verdict = "stop: " + why
		}
		note(fmt.Sprintf("knee step %s: offered %.0f/s, got %.0f/s, p50 %s, p99 %s: %s",
			name, r.OfferedRate, r.Throughput(), fmtMS(r.Latency.P50), fmtMS(r.Latency.P99), verdict))
		if !ok && !retried && ctx.Err() == nil {
			// One stall (another process, a broker's garbage collection)
			// should not end the search: a rate is given up only when it
			// misses twice in a row.
			retried = true
			step--
			continue
		}
		if !ok {
			k.StopReason = fmt.Sprintf("step %s at %.0f/s: %s", name, rate, why)
			return k
		}
		retried = false
		k.Knee, k.KneeRate = len(k.Steps)-1, rate
		rate *= cfg.KneeFactor
	}
	k.StopReason = fmt.Sprintf("every one of the %d steps (--knee-max-steps) met the criteria", cfg.KneeMaxSteps)
	return k
}

// kneeOK says whether a knee step kept up: p99 within the limit, every
// result in, no refusal or pipeline error, and completions at the offered
// rate.
func kneeOK(r *PhaseReport, cfg Config) (bool, string) {
	var why []string
	if r.Interrupted {
		return false, "interrupted"
	}
	if r.Latency.Count == 0 {
		return false, "nothing completed"
	}
	if r.Latency.P99 > ms(cfg.KneeP99) {
		why = append(why, fmt.Sprintf("p99 %s over %s", fmtMS(r.Latency.P99), fmtMS(ms(cfg.KneeP99))))
	}
	if r.Missing > 0 {
		why = append(why, fmt.Sprintf("%d results missing", r.Missing))
	}
	if n := errorCount(r); n > 0 {
		why = append(why, fmt.Sprintf("%d errors", n))
	}
	if got := r.Throughput(); got < keptUp*r.OfferedRate {
		why = append(why, fmt.Sprintf("fell behind: %.0f/s of %.0f/s", got, r.OfferedRate))
	}
	if len(why) > 0 {
		return false, strings.Join(why, ", ")
	}
	return true, ""
}

func errorCount(r *PhaseReport) int {
	n := 0
	for _, v := range r.Errors {
		n += v
	}
	return n
}
