package bench

import "fmt"

// Hop is one broker hop that every command crosses on its way from the
// cashier to the app, with the floor's figures for it when measured.
type Hop struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	FloorP50  float64 `json:"floor_p50_ms,omitempty"`
	FloorRate float64 `json:"floor_rate_per_s,omitempty"`
}

// Hop kinds.
const (
	hopAMQP      = "amqp: publish with confirm to a quorum queue, consume, ack"
	hopMQTTRound = "mqtt: QoS 1 round trip"
	hopMQTTOne   = "mqtt: QoS 1 one way (half a round trip)"
)

// hops are the hops a command crosses. The one-way MQTT hop is taken as
// half a round trip for latency and as twice the round-trip rate for
// throughput (one publish instead of two). HTTP into the cashier is not a
// broker hop: it is part of what the pipeline itself costs.
func hops(f *FloorReport) []Hop {
	h := []Hop{
		{Name: "commands queue (cashier → barista)", Kind: hopAMQP},
		{Name: "barista ↔ device", Kind: hopMQTTRound},
		{Name: "results queue (barista → caller)", Kind: hopAMQP},
		{Name: "caller → app", Kind: hopMQTTOne},
	}
	if f == nil {
		return h
	}
	for i := range h {
		switch h[i].Kind {
		case hopAMQP:
			h[i].FloorP50, h[i].FloorRate = f.AMQP.Lone.P50, f.AMQP.HopPerS
		case hopMQTTRound:
			h[i].FloorP50, h[i].FloorRate = f.MQTT.Lone.P50, f.MQTT.RoundTripPerS
		case hopMQTTOne:
			h[i].FloorP50, h[i].FloorRate = f.MQTT.Lone.P50/2, 2*f.MQTT.RoundTripPerS
		}
	}
	return h
}

// Verdicts of a target.
const (
	VerdictPass = "PASS"
	VerdictFail = "FAIL"
	// VerdictOpen: the run could not tell; an open-loop run that kept up
	// with an offered rate below the target measured that rate, not the
	// pipeline's capacity.
	VerdictOpen = "INCONCLUSIVE"
)

// Target thresholds.
const (
	LoneTarget        = 2.0 // pipeline lone p50 ≤ 2 × Σ floor p50
	ThroughputTarget  = 0.5 // pipeline throughput ≥ 50% of the hops in series
	CashierOnlyTarget = 0.7 // cashier 202/s ≥ 70% of publish-with-confirm
)

// Target is one comparison of the pipeline with the floor.
type Target struct {
	Name      string  `json:"name"`
	Rule      string  `json:"rule"`
	Measured  float64 `json:"measured"`
	Floor     float64 `json:"floor"`
	Unit      string  `json:"unit"`
	Ratio     float64 `json:"ratio"`
	Threshold float64 `json:"threshold"`
	Verdict   string  `json:"verdict"`
	Note      string  `json:"note,omitempty"`
}

// keptUp is how close to the offered rate an open-loop run must come to
// count as having kept up with it.
const keptUp = 0.95

// targets compares the pipeline's figures with the floor's.
func targets(f *FloorReport, lone, run *PhaseReport, knee *KneeReport, cashierOnly bool) []Target {
	if f == nil {
		return nil
	}
	var out []Target
	if lone != nil && lone.Latency.Count > 0 && f.SumP50 > 0 {
		t := Target{
			Name: "lone command", Unit: "ms",
			Rule:     fmt.Sprintf("pipeline p50, one command at a time, ≤ %.0f× the sum of the floor hops' p50 (+ device latency)", LoneTarget),
			Measured: lone.Latency.P50, Floor: f.SumP50, Threshold: LoneTarget,
		}
		t.Ratio = t.Measured / t.Floor
		t.Verdict = verdict(t.Ratio <= LoneTarget)
		out = append(out, t)
	}
	src, kind := run, "main run"
	if k := knee.KneeStep(); k != nil {
		src, kind = k, fmt.Sprintf("knee (%.0f/s offered)", k.OfferedRate)
	} else if knee != nil && len(knee.Steps) > 0 {
		// Not even the first step met the knee's criteria: its figures
		// stand, judged as a closed run would be (no excuse of a low rate).
		first := *knee.Steps[0]
		first.Mode = "knee"
		src, kind = &first, "first knee step, which already missed the knee's criteria"
	}
	if cashierOnly {
		if src != nil && f.AMQP.PublishPerS > 0 {
			t := Target{
				Name: "cashier alone", Unit: "/s",
				Rule:     fmt.Sprintf("202s per second ≥ %.0f%% of RabbitMQ's publish-with-confirm rate (%d in flight)", CashierOnlyTarget*100, FloorInFlight),
				Measured: src.AcceptedPerS, Floor: f.AMQP.PublishPerS, Threshold: CashierOnlyTarget,
			}
			t.Ratio = t.Measured / t.Floor
			t.Verdict, t.Note = throughputVerdict(src, t.Ratio, CashierOnlyTarget, t.Floor, kind)
			out = append(out, t)
		}
		return out
	}
	if src != nil && f.SeriesRate > 0 {
		t := Target{
			Name: "throughput", Unit: "/s",
			Rule:     fmt.Sprintf("results per second ≥ %.0f%% of the hops in series, 1/Σ(1/rate)", ThroughputTarget*100),
			Measured: src.ResultsPerS, Floor: f.SeriesRate, Threshold: ThroughputTarget,
		}
		t.Ratio = t.Measured / t.Floor
		t.Verdict, t.Note = throughputVerdict(src, t.Ratio, ThroughputTarget, t.Floor, kind)
		out = append(out, t)
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return VerdictPass
	}
	return VerdictFail
}

// throughputVerdict judges a throughput ratio. An open-loop run that kept
// up with a rate below the target cannot fail it: it never asked for more.
func throughputVerdict(src *PhaseReport, ratio, threshold, floor float64, kind string) (string, string) {
	note := "from the " + kind
	if ratio >= threshold {
		return VerdictPass, note
	}
	if src.Mode == "open" && src.OfferedRate < threshold*floor && src.Throughput() >= keptUp*src.OfferedRate {
		return VerdictOpen, fmt.Sprintf("%s: it kept up with the offered %.0f/s, below the target of %.0f/s; measure capacity with --concurrency or --knee",
			note, src.OfferedRate, threshold*floor)
	}
	return VerdictFail, note
}
