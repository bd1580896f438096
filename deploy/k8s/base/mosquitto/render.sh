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
#     - ROLE edge: the bridge to the core appended, SRC/bridge.conf filled
#       in by `cafe tier bridge` as `cafe tier conf` fills it in for the
#       tier on one machine (logged in as cafe-bridge).
#
# ROLE is core or edge. An edge needs CAFE_MQTT_CORE (host:port of the
# core), HOSTNAME (the pod's name, unique: the bridge's name, so its client
# ids and its state topic cafe/bridges/HOSTNAME are its own) and the auth
# key (CAFE_AUTH_KEY_FILE: cafe-bridge's password is derived from it).
# Every other line of cafe.conf applies as it is: logins (dynamic security
# plugin), the ACL, TLS on 8883, limits, persistence. The offline tests of
# deploy/k8s run this script on the real cafe.conf and bridge.conf and
# check the result line by line.
# HOSTNAME is no POSIX sh variable, but Kubernetes sets it in every
# container to the pod's name.
# shellcheck disable=SC3028
set -eu
umask 077 # mosquitto.conf holds the bridge's password

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
	: "${HOSTNAME:?an edge needs HOSTNAME (its pod name)}"
	echo >>"$dst/mosquitto.conf.tmp"
	cafe tier bridge --template "$src/bridge.conf" --name "$HOSTNAME" --core "$CAFE_MQTT_CORE" >>"$dst/mosquitto.conf.tmp"
fi
mv "$dst/mosquitto.conf.tmp" "$dst/mosquitto.conf"
chmod 0600 "$dst/mosquitto.conf"
