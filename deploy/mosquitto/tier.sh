#!/usr/bin/env bash
# deploy/mosquitto/tier.sh: the MQTT broker tier on this machine, a core
# Mosquitto and N edge Mosquittos bridged to it (deploy/README.md, "The MQTT
# tier"). Each broker has its own folder below CAFE_TIER_DIR (config, ACL,
# logins, database, pid and log); `cafe tier conf` writes them from
# deploy/mosquitto/cafe.conf, bridge.conf and cafe.acl. The shared broker on
# 1883/8883 is not touched.
#
#   tier.sh up       write every broker's files, start the brokers that do not
#                    run, wait until every edge's bridge is connected, start
#                    the logins' reconciler and the janitor; prints the URLs (also in
#                    CAFE_TIER_DIR/tier.env)
#   tier.sh down     stop the reconciler, the janitor and every broker of CAFE_TIER_DIR
#                    (SIGTERM: each saves its database)
#   tier.sh status   each broker: pid, port, clients connected; each bridge's state
#   tier.sh purge    down, then delete CAFE_TIER_DIR (databases included)
#
# Environment (all optional; task tier:up passes EDGES as CAFE_TIER_EDGES):
#   CAFE_TIER_DIR        the tier's folder (default /tmp/cafe-tier)
#   CAFE_TIER_EDGES      how many edges (default 2)
#   CAFE_TIER_CORE_PORT  the core's port (default 1893)
#   CAFE_TIER_EDGE_PORT  edge-1's port; edge-N's is this + N - 1 (default 1901)
#   CAFE_CLIENTS_FILE    the registry whose devices and apps get logins on every
#                        broker (default ~/.config/cafe/clients.yaml)
#   CAFE_TIER_RECONCILE  1 (default): run `cafe broker-auth` on every broker, so
#                        registry changes reach them; 0: logins only as written
#                        at start (a bulk-provisioned fleet needs no more)
#   CAFE_TIER_JANITOR    1 (default): run `cafe tier janitor`, which marks offline on
#                        the core the devices of an edge that crashed; 0: not
#   CAFE_TIER_BRIDGE_TIMEOUT  seconds to wait for the bridges (default 20)
set -euo pipefail

# shellcheck disable=SC2034 # read by brokers.sh's say and die
LOG_PREFIX=tier
# shellcheck source-path=SCRIPTDIR source=../brokers.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/../brokers.sh"

readonly TIER_DIR="${CAFE_TIER_DIR:-/tmp/cafe-tier}"
readonly BRIDGE_TIMEOUT="${CAFE_TIER_BRIDGE_TIMEOUT:-20}"

# tier_brokers: "name url dir" of each broker that has a folder in TIER_DIR,
# the core first.
tier_brokers() {
	local d port
	for d in "$TIER_DIR"/core $(printf '%s\n' "$TIER_DIR"/edge-* | sort -V); do
		[[ -r $d/mosquitto.conf ]] || continue
		port="$(awk '$1 == "listener" { print $2; exit }' "$d/mosquitto.conf")"
		printf '%s tcp://127.0.0.1:%s %s\n' "$(basename "$d")" "$port" "$d"
	done
}

# pid_of DIR: the pid of the mosquitto running with DIR's config, or nothing.
pid_of() {
	local pid
	pid="$(cat "$1/mosquitto.pid" 2>/dev/null)" || return 0
	[[ -n $pid && "$(cat "/proc/$pid/comm" 2>/dev/null)" == mosquitto ]] || return 0
	[[ "$(config_of "$pid")" == "$(realpath -m "$1/mosquitto.conf")" ]] && echo "$pid"
	return 0
}

port_of() { local p="${1##*:}"; echo "${p%%/*}"; }

admin_password() { "$CAFE_BIN" credentials cafe-admin --password; }

# bridges_up PORT N: true when the core on PORT says N bridges are connected
# (their retained notifications, cafe/bridges/edge-N = 1).
bridges_up() {
	local up
	up="$(bridge_states "$1" | awk '$2 == "1"' | wc -l)"
	((up >= $2))
}

# bridge_states PORT: "topic state" of every bridge the core on PORT knows.
bridge_states() {
	mosquitto_sub -h 127.0.0.1 -p "$1" -i "cafe-tier-$$" -u cafe-admin -P "$ADMIN_PW" \
		-t 'cafe/bridges/+' -v --retained-only -W 1 2>/dev/null || true
}

start_broker() {
	local name=$1 url=$2 dir=$3 port
	port="$(port_of "$url")"
	if [[ -n "$(pid_of "$dir")" ]]; then
		say "$name already runs (pid $(pid_of "$dir")) on $url"
		return 0
	fi
	answers 127.0.0.1 "$port" && die "something else listens on 127.0.0.1:$port ($name's port)" \
		"find it: ss -ltnp 'sport = :$port'; or give the tier other ports: CAFE_TIER_CORE_PORT, CAFE_TIER_EDGE_PORT"
	mosquitto -d -c "$dir/mosquitto.conf" ||
		die "mosquitto -d -c $dir/mosquitto.conf failed (its message is above)" \
			"run it in the foreground to see why: mosquitto -v -c $dir/mosquitto.conf"
	wait_until "$MOSQUITTO_START_TIMEOUT" answers 127.0.0.1 "$port" ||
		die "$name did not answer on $url within ${MOSQUITTO_START_TIMEOUT}s" "read its log: tail -n 30 $dir/mosquitto.log"
	say "$name started (pid $(pid_of "$dir")) on $url"
}

# start_helper NAME ARGS...: run `cafe ARGS...` in the background, detached,
# its pid and log in TIER_DIR/NAME.pid and NAME.log (one of each NAME).
start_helper() {
	local name=$1
	shift
	stop_helper "$name"
	setsid nohup "$CAFE_BIN" "$@" >"$TIER_DIR/$name.log" 2>&1 </dev/null &
	echo $! >"$TIER_DIR/$name.pid"
	HELPER_PID=$!
}

# helper_pid NAME: the pid of the running helper NAME, or nothing.
helper_pid() {
	local pid
	pid="$(cat "$TIER_DIR/$1.pid" 2>/dev/null)" || return 0
	[[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == cafe ]] && echo "$pid"
	return 0
}

stop_helper() {
	local pid
	pid="$(helper_pid "$1")"
	if [[ -n $pid ]]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait_until 10 exited "$pid" || kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$TIER_DIR/$1.pid"
}

# start_helpers CORE_URL URLS EDGE_ARGS: the logins' reconciler on every
# broker and the janitor of the edges (EDGE_ARGS: name=url,...).
start_helpers() {
	if [[ ${CAFE_TIER_RECONCILE:-1} == 1 ]]; then
		start_helper broker-auth broker-auth --broker "$2"
		say "logins kept in step with the registry on every broker: cafe broker-auth (pid $HELPER_PID, log $TIER_DIR/broker-auth.log)"
	else
		stop_helper broker-auth
	fi
	if [[ ${CAFE_TIER_JANITOR:-1} == 1 ]]; then
		start_helper janitor tier janitor --core "$1" --edge "$3"
		say "a crashed edge's devices are marked offline on the core: cafe tier janitor (pid $HELPER_PID, log $TIER_DIR/janitor.log)"
	else
		stop_helper janitor
	fi
}

up() {
	ensure_packages
	build_cafe
	local listing name url dir core="" edges=() urls=() named=()
	listing="$("$CAFE_BIN" tier conf --dir "$TIER_DIR")" || die "cafe tier conf failed (its message is above)" "see: $CAFE_BIN tier conf --help"
	while read -r name url dir; do
		start_broker "$name" "$url" "$dir"
	done <<<"$listing"
	# Every broker that runs in the folder, also an edge beyond
	# CAFE_TIER_EDGES left from an earlier, larger tier:up.
	while read -r name url dir; do
		[[ -n $name && -n "$(pid_of "$dir")" ]] || continue
		grep -q "^$name " <<<"$listing" || say "$name ($url) runs too, beyond CAFE_TIER_EDGES; it stays part of the tier (stop it: kill \$(cat $dir/mosquitto.pid))"
		urls+=("$url")
		if [[ $name == core ]]; then core=$url; else edges+=("$url") named+=("$name=$url"); fi
	done <<<"$(tier_brokers)"
	ADMIN_PW="$(admin_password)"
	wait_until "$BRIDGE_TIMEOUT" bridges_up "$(port_of "$core")" "${#edges[@]}" ||
		die "not every edge's bridge connected to the core within ${BRIDGE_TIMEOUT}s: $(bridge_states "$(port_of "$core")" | tr '\n' ' ')" \
			"read the edges' logs: tail -n 20 $TIER_DIR/edge-*/mosquitto.log"
	start_helpers "$core" "$(IFS=,; echo "${urls[*]}")" "$(IFS=,; echo "${named[*]}")"
	{
		echo "CAFE_TIER_CORE_URL=$core"
		echo "CAFE_TIER_EDGE_URLS=$(IFS=,; echo "${edges[*]}")"
	} >"$TIER_DIR/tier.env"
	say "core $core: baristas, callers, the cashier's sessions (CAFE_MQTT_URL=$core CAFE_SESSION_MQTT_URL=$core)"
	say "edges ${edges[*]}: devices (devicesim --mqtt-url EDGE_URL); an app may use an edge too"
	say "all ${#edges[@]} bridges connected; URLs in $TIER_DIR/tier.env"
}

down() {
	local name url dir pid stopping=()
	stop_helper janitor
	stop_helper broker-auth
	# SIGTERM to every broker at once (each takes a second or two to save
	# and close), then wait for each.
	while read -r name url dir; do
		[[ -n $name ]] || continue
		pid="$(pid_of "$dir")"
		[[ -n $pid ]] || continue
		kill -TERM "$pid" 2>/dev/null || true
		stopping+=("$name $url $pid")
	done <<<"$(tier_brokers)"
	for name in "${stopping[@]}"; do
		read -r name url pid <<<"$name"
		wait_until 15 exited "$pid" || die "$name (pid $pid) did not exit within 15s of SIGTERM" "kill it: kill -KILL $pid"
		say "$name stopped (was pid $pid on $url)"
	done
}

status() {
	local name url dir pid clients rc=0
	[[ -d $TIER_DIR ]] || { say "no tier in $TIER_DIR (start one: task tier:up)"; return 1; }
	build_cafe
	ADMIN_PW="$(admin_password)"
	while read -r name url dir; do
		[[ -n $name ]] || continue
		pid="$(pid_of "$dir")"
		if [[ -z $pid ]]; then
			echo "$name  $url  DOWN  (start: task tier:up; log $dir/mosquitto.log)"
			rc=1
			continue
		fi
		# shellcheck disable=SC2016 # a literal topic name, not a variable
		clients="$(mosquitto_sub -h 127.0.0.1 -p "$(port_of "$url")" -i "cafe-tier-$$" -u cafe-admin -P "$ADMIN_PW" \
			-t '$SYS/broker/clients/connected' -C 1 -W 12 2>/dev/null || echo '?')"
		echo "$name  $url  up, pid $pid, $clients clients connected (\$SYS, every 10 s), rss $(awk '/VmRSS/ { print $2 " kB" }' "/proc/$pid/status")"
		if [[ $name == core ]]; then
			bridge_states "$(port_of "$url")" | sed 's|^cafe/bridges/\(.*\) 1$|  bridge \1: connected|; s|^cafe/bridges/\(.*\) 0$|  bridge \1: DOWN|'
		fi
	done <<<"$(tier_brokers)"
	pid="$(helper_pid broker-auth)"
	if [[ -n $pid ]]; then
		echo "logins: cafe broker-auth pid $pid (log $TIER_DIR/broker-auth.log)"
	else
		echo "logins: no reconciler running (registry changes reach the tier at its next tier:up)"
	fi
	pid="$(helper_pid janitor)"
	if [[ -n $pid ]]; then
		echo "janitor: cafe tier janitor pid $pid (log $TIER_DIR/janitor.log)"
	else
		echo "janitor: not running (a crashed edge's devices stay online on the core until they reconnect)"
	fi
	return "$rc"
}

case "${1:-up}" in
up) up ;;
down) down ;;
status) status ;;
purge)
	down
	rm -rf -- "$TIER_DIR"
	say "removed $TIER_DIR"
	;;
-h | --help | help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
*) die "unknown command: $1" "use one of: up (default), down, status, purge" ;;
esac
