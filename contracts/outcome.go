package contracts

// Outcome says how a command ended; results carry it in HeaderOutcome and
// services count it in metrics (a bounded label).
type Outcome string

const (
	OutcomeReply       Outcome = "reply"       // the device replied; its response is the result
	OutcomeOffline     Outcome = "offline"     // CodeDeviceOffline
	OutcomeTimeout     Outcome = "timeout"     // CodeDeviceTimeout
	OutcomeExpired     Outcome = "expired"     // CodeExpired
	OutcomeUnreachable Outcome = "unreachable" // CodeDeviceUnreachable
	OutcomeBadReply    Outcome = "bad_reply"   // CodeBadDeviceReply
	OutcomeDeadLetter  Outcome = "dead_letter" // CodeDeadLettered
	OutcomeSent        Outcome = "sent"        // one-way command handed to the MQTT broker; no result
)

// OutcomeOf is the outcome that goes with a pipeline error code.
func OutcomeOf(c Code) Outcome {
	switch c {
	case CodeDeviceOffline:
		return OutcomeOffline
	case CodeDeviceTimeout:
		return OutcomeTimeout
	case CodeExpired:
		return OutcomeExpired
	case CodeDeviceUnreachable:
		return OutcomeUnreachable
	case CodeBadDeviceReply:
		return OutcomeBadReply
	case CodeDeadLettered:
		return OutcomeDeadLetter
	}
	return OutcomeReply
}
