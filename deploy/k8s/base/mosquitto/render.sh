#!/bin/sh
# render.sh SRC DST ROLE: Mosquitto's configuration for one pod, made at
# start (by the StatefulSet's init container) from deploy/mosquitto's own
# files, mounted from the ConfigMap cafe-mosquitto in SRC:
#
#   DST/cafe.acl        SRC/cafe.acl, unchanged
#   DST/mosquitto.conf  SRC/cafe.conf with exactly these changes:
#     - "listener PORT 127.0.0.1" becomes "listener PORT": on one machine
#       the brokers listen on the loopback only; in a pod, other pods must
#       reach them (NetworkPolicies say which);
#     - "log_dest file ..." becomes "log_dest stdout", for kubectl logs;
#     - ROLE edge: a bridge to the core broker is appended (below).
#
# ROLE is core or edge. An edge needs CAFE_MQTT_CORE (host:port of the
# core), CAFE_BRIDGE_PASSWORD (the core's cafe-admin password: `cafe
# credentials admin --password`) and HOSTNAME (the pod's name, unique, so
# that each edge's bridge has a client id of its own). Every other line of
# cafe.conf applies as it is: logins (dynamic security plugin), the ACL,
# TLS on 8883, limits, persistence. The offline tests of deploy/k8s run
# this script on the real cafe.conf and check the result line by line.
# HOSTNAME is no POSIX sh variable, but Kubernetes sets it in every
# container to the pod's name.
# shellcheck disable=SC3028
set -eu

src=$1 dst=$2 role=$3
case $role in
core | edge) ;;
*)
	echo "render.sh: role $role: want core or edge" >&2
	exit 2
	;;
esac

mkdir -p "$dst"
cp "$src/cafe.acl" "$dst/cafe.acl"
sed -e 's/^listener \([0-9][0-9]*\) 127\.0\.0\.1$/listener \1/' \
	-e 's/^log_dest file .*/log_dest stdout/' \
	"$src/cafe.conf" >"$dst/mosquitto.conf.tmp"

if [ "$role" = edge ]; then
	: "${CAFE_MQTT_CORE:?an edge needs CAFE_MQTT_CORE (host:port of the core broker)}"
	: "${CAFE_BRIDGE_PASSWORD:?an edge needs CAFE_BRIDGE_PASSWORD (cafe credentials admin --password)}"
	: "${HOSTNAME:?an edge needs HOSTNAME (its pod name)}"
	# The bridge: commands and app results come down from the core (where
	# baristas and callers publish); replies and presence go up. QoS 1 both
	# ways; each topic flows one way only and try_private marks the bridge
	# to the core, so nothing loops. Presence keeps its retain flag, so the
	# core holds every device's retained presence for the baristas.
	cat >>"$dst/mosquitto.conf.tmp" <<CONF

# --- Bridge to the core (added by deploy/k8s/base/mosquitto/render.sh) ----
connection cafe-core
address $CAFE_MQTT_CORE
remote_clientid cafe-bridge-$HOSTNAME
remote_username cafe-admin
remote_password $CAFE_BRIDGE_PASSWORD
bridge_protocol_version mqttv311
try_private true
cleansession false
notifications false
topic devices/+/commands/# in 1
topic clients/+/results in 1
topic devices/+/replies/# out 1
topic devices/+/presence out 1
CONF
fi
mv "$dst/mosquitto.conf.tmp" "$dst/mosquitto.conf"
chmod 0600 "$dst/mosquitto.conf"
