package contracts

import "strings"

// MQTT topics. The public ones are part of cafe's contract with apps and
// devices (asyncapi.yaml describes them for outside authors):
//
//	devices/{deviceID}/commands/{route}/{key}   barista → device, QoS 1, payload: the app's request, unchanged
//	devices/{deviceID}/replies/{route}/{key}    device → barista, QoS 1, payload: the device's JSON-RPC response
//	devices/{deviceID}/presence                 device, retained: {"online":true}; last will {"online":false}
//	clients/{clientID}/results                  caller → app, QoS 1, payload: JSON-RPC response with the app's id
//
// The two levels after "commands" are the pipeline's own. A device copies
// them into the reply topic and needs to understand neither:
//
//   - route names the barista instance that sent the command; each barista
//     subscribes to devices/+/replies/{its route}/+ and so receives only the
//     replies meant for it.
//   - key is the repeat key: the command's id in the pipeline, the same on
//     every delivery of the same command (also after a redelivery to another
//     barista). A device that must not act twice remembers the keys it has
//     executed and, for a key it has seen, replies again without acting.
//
// Route and key use the identifier charset of ids.go, so every level is a
// plain token that is never a wildcard.

// Topic levels.
const (
	LevelDevices  = "devices"
	LevelCommands = "commands"
	LevelReplies  = "replies"
	LevelPresence = "presence"
	LevelClients  = "clients"
	LevelResults  = "results"
)

// PresenceFilter matches every device's presence topic.
const PresenceFilter = LevelDevices + "/+/" + LevelPresence

// MaxRouteLen and MaxKeyLen bound the pipeline's own levels.
const (
	MaxRouteLen = 64
	MaxKeyLen   = 64
)

// ValidRoute reports whether s can be a route level.
func ValidRoute(s string) bool { return validToken(s, MaxRouteLen) }

// ValidKey reports whether s can be a repeat-key level.
func ValidKey(s string) bool { return validToken(s, MaxKeyLen) }

// CommandTopic is where a barista publishes a command for a device.
func CommandTopic(deviceID, route, key string) string {
	return LevelDevices + "/" + deviceID + "/" + LevelCommands + "/" + route + "/" + key
}

// ReplyTopic is where the device answers the command sent on CommandTopic
// with the same arguments.
func ReplyTopic(deviceID, route, key string) string {
	return LevelDevices + "/" + deviceID + "/" + LevelReplies + "/" + route + "/" + key
}

// ReplyTopicFor turns a command topic into its reply topic, as a device does:
// the level "commands" becomes "replies", everything else is copied.
func ReplyTopicFor(commandTopic string) (string, bool) {
	parts := strings.SplitN(commandTopic, "/", 4)
	if len(parts) < 4 || parts[0] != LevelDevices || parts[2] != LevelCommands || parts[3] == "" {
		return "", false
	}
	return parts[0] + "/" + parts[1] + "/" + LevelReplies + "/" + parts[3], true
}

// CommandsFilter is the subscription of a device: all its commands.
func CommandsFilter(deviceID string) string {
	return LevelDevices + "/" + deviceID + "/" + LevelCommands + "/#"
}

// RepliesFilter is the subscription of the barista whose route this is.
func RepliesFilter(route string) string {
	return LevelDevices + "/+/" + LevelReplies + "/" + route + "/+"
}

// ParseCommandTopic splits a command topic into its device, route and key.
func ParseCommandTopic(topic string) (deviceID, route, key string, ok bool) {
	return parseRouted(topic, LevelCommands)
}

// ParseReplyTopic splits a reply topic into its device, route and key. ok is
// false for anything that is not exactly devices/{id}/replies/{route}/{key}
// with valid levels.
func ParseReplyTopic(topic string) (deviceID, route, key string, ok bool) {
	return parseRouted(topic, LevelReplies)
}

func parseRouted(topic, kind string) (deviceID, route, key string, ok bool) {
	rest, found := strings.CutPrefix(topic, LevelDevices+"/")
	if !found {
		return "", "", "", false
	}
	deviceID, rest, found = strings.Cut(rest, "/")
	if !found || !ValidDeviceID(deviceID) {
		return "", "", "", false
	}
	rest, found = strings.CutPrefix(rest, kind+"/")
	if !found {
		return "", "", "", false
	}
	route, key, found = strings.Cut(rest, "/")
	if !found || !ValidRoute(route) || !ValidKey(key) {
		return "", "", "", false
	}
	return deviceID, route, key, true
}

// PresenceTopic is a device's retained presence topic.
func PresenceTopic(deviceID string) string {
	return LevelDevices + "/" + deviceID + "/" + LevelPresence
}

// ParsePresenceTopic returns the device id of a presence topic.
func ParsePresenceTopic(topic string) (deviceID string, ok bool) {
	return between(topic, LevelDevices, LevelPresence, ValidDeviceID)
}

// ResultsTopic is where an app receives its results.
func ResultsTopic(clientID string) string {
	return LevelClients + "/" + clientID + "/" + LevelResults
}

// ParseResultsTopic returns the client id of a results topic.
func ParseResultsTopic(topic string) (clientID string, ok bool) {
	return between(topic, LevelClients, LevelResults, ValidClientID)
}

// between returns the id of a topic first/{id}/last, if valid says it is one.
func between(topic, first, last string, valid func(string) bool) (id string, ok bool) {
	rest, found := strings.CutPrefix(topic, first+"/")
	if !found {
		return "", false
	}
	id, found = strings.CutSuffix(rest, "/"+last)
	if !found || !valid(id) {
		return "", false
	}
	return id, true
}
