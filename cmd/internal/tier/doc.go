// Package tier is the MQTT broker tier on one machine: a core broker and
// N edge brokers, each a Mosquitto of its own (config, port, persistence,
// pid and log files in its own folder), the edges bridged to the core.
// Mosquitto does not cluster, so the tier is a tree: devices connect to any
// edge; baristas and callers to the core; an app to the core or an edge.
//
// Every broker runs cafe's settings (deploy/mosquitto/cafe.conf, with its
// own listener and paths), the same ACL file (cafe.acl) and the dynamic
// security plugin with the same logins (brokerauth.Render); each edge adds
// deploy/mosquitto/bridge.conf, which logs in to the core as cafe-bridge
// and carries, at QoS 1 in a persistent session:
//
//	core → edge   devices/+/commands/#   clients/+/results
//	edge → core   devices/+/replies/#    devices/+/presence (retained)
//
// Plan names the brokers and their files; Write writes them; `cafe tier
// conf` does both for deploy/mosquitto/tier.sh (task tier:up), and
// tiertest starts a scratch tier for tests. BridgeConf fills in one edge's
// bridge alone (`cafe tier bridge`, for the Kubernetes edges of
// deploy/k8s, whose config is otherwise their own). Janitor (`cafe tier janitor`)
// marks offline on the core the devices of an edge that crashed, which
// sent none of their last wills. deploy/README.md ("The MQTT
// tier") says why each bridge setting is what it is, and what happens to
// commands in flight when an edge restarts.
package tier
