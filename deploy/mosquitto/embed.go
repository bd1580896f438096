// Package mosquitto holds Mosquitto's configuration for cafe, as the files
// beside this one, so that every broker cafe runs reads the same settings:
// the shared broker (cafe.conf, started by deploy/brokers.sh) and each
// broker of the MQTT tier (cmd/internal/tier writes a core's and each
// edge's config from cafe.conf, bridge.conf and cafe.acl).
package mosquitto

import _ "embed"

// Conf is cafe.conf: the settings of every broker.
//
//go:embed cafe.conf
var Conf string

// ACL is cafe.acl: the topics each identity may read and write.
//
//go:embed cafe.acl
var ACL string

// Bridge is bridge.conf: an edge's bridge to the core, a text/template
// of a tier.Bridge.
//
//go:embed bridge.conf
var Bridge string
