package contracts

import "net/url"

// ClipLen is how much of an untrusted string (a message id, a topic, an
// id that failed validation) Clip keeps for a log line or an error.
const ClipLen = 80

// Clip shortens s to ClipLen bytes, marking the cut, so that a hostile
// value cannot flood a log line or an error message.
func Clip(s string) string {
	if len(s) > ClipLen {
		return s[:ClipLen] + "…"
	}
	return s
}

// RedactURL hides the password of a broker URL for logs and errors.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
