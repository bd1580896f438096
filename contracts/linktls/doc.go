// Package linktls gives cafe's broker links (mqttlink, amqplink) their TLS
// settings and explains certificate failures to the operator.
//
// A link takes Files: a CA file (the PEM certificates the broker's
// certificate must chain to; empty means the system's trust store) and,
// optionally, a client certificate and its key. Each link declares the
// Settings that name them (CAFE_MQTT_CA_FILE, CAFE_AMQP_CA_FILE, ...).
// Load reads them once, when the link is made: a file that cannot be read
// or holds no usable PEM is an error that names the setting, the file and
// what to do, so a service refuses to start rather than retry forever.
//
// A certificate that fails while connecting (unknown authority, a name the
// certificate does not carry, expired, a client certificate the broker
// refuses, a port that does not speak TLS) is a Cause. A Reporter logs each
// distinct cause once, at error level, with a hint that names the setting
// to change; the link keeps retrying quietly, since an operator may fix the
// broker's side without restarting cafe.
package linktls
