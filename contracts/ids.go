package contracts

import (
	"crypto/rand"
	"encoding/hex"
)

// Identifier rules. Device and client ids become single MQTT topic levels
// (devices/{deviceID}/..., clients/{clientID}/results), and string MsgIDs are
// copied into AMQP headers and logs, so all three are restricted to a charset
// that needs no escaping anywhere and can never be an MQTT wildcard (+ #),
// a level separator (/) or a system-topic prefix ($).
//
//	device id:  1..128 characters from  A-Z a-z 0-9 . _ : -   (not "." or "..")
//	client id:  1..64  characters from  A-Z a-z 0-9 . _ : -   (not "." or "..")
//	string id:  1..128 characters from  A-Z a-z 0-9 . _ : -   (inside the JSON quotes, no escapes)
//	number id:  an integer: optional minus sign, 1..19 digits, no fraction or exponent

// MaxDeviceIDLen is the longest accepted device id.
const MaxDeviceIDLen = 128

// MaxClientIDLen is the longest accepted client id.
const MaxClientIDLen = 64

// MaxStringIDLen is the longest accepted string MsgID (without its quotes).
const MaxStringIDLen = 128

// MaxNumberIDDigits is the most digits a numeric MsgID may have.
const MaxNumberIDDigits = 19

// safe reports whether b is in the identifier charset A-Z a-z 0-9 . _ : -
func safe(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	case b == '.', b == '_', b == ':', b == '-':
		return true
	}
	return false
}

func validToken(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !safe(s[i]) {
			return false
		}
	}
	return true
}

// ValidDeviceID reports whether id may name a device. "." and ".." are
// refused: they are path segments, and a device id appears in URL paths
// (/v1/devices/{id}/commands).
func ValidDeviceID(id string) bool { return validToken(id, MaxDeviceIDLen) && !dots(id) }

// ValidClientID reports whether id may name a client (an app).
func ValidClientID(id string) bool { return validToken(id, MaxClientIDLen) && !dots(id) }

func dots(id string) bool { return id == "." || id == ".." }

// validStringID reports whether the contents of a JSON string (without its
// quotes, as raw bytes) form a valid string MsgID.
func validStringID(raw []byte) bool {
	if len(raw) == 0 || len(raw) > MaxStringIDLen {
		return false
	}
	for _, b := range raw {
		if !safe(b) {
			return false
		}
	}
	return true
}

// validNumberID reports whether a raw JSON number token is a valid numeric
// MsgID: an integer of at most MaxNumberIDDigits digits.
func validNumberID(raw []byte) bool {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > MaxNumberIDDigits {
		return false
	}
	for _, b := range digits {
		if b < '0' || b > '9' {
			return false
		}
	}
	// JSON forbids leading zeros; json.Valid already rejected them, but keep
	// the rule local so this function stands on its own. -0 is refused: many
	// JSON clients read it as 0, so it would not name a message of its own.
	return !(len(digits) > 1 && digits[0] == '0') && string(raw) != "-0"
}

// ValidIDToken reports whether s is the raw token of a valid MsgID: a
// numeric id, or a string id with its quotes (as in the cafe-msg-id header).
func ValidIDToken(s string) bool {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return validStringID([]byte(s[1 : len(s)-1]))
	}
	return validNumberID([]byte(s))
}

// NewCommandID returns a fresh command id: 32 lowercase hex digits from
// crypto/rand. It names one accepted command for its whole life: the AMQP
// message id of the command and of its result, and the repeat key a device
// sees on every delivery.
func NewCommandID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
