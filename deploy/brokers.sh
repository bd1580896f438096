#!/usr/bin/env bash
# deploy/brokers.sh: make RabbitMQ and Mosquitto run on this machine the way
# cafe needs them. Idempotent; when both already run as wanted it only checks
# and returns (about one second, most of it `rabbitmqctl`).
#
#   deploy/brokers.sh                    ensure both brokers run (the default)
#   deploy/brokers.sh status             versions, up or down, TLS listeners, configs
#   deploy/brokers.sh restart-mosquitto  stop whatever Mosquitto owns port 1883, start ours
#   deploy/brokers.sh restart-rabbitmq   stop the RabbitMQ node and start it again
#
# What "ensure" does, step by step:
#   1. installs the Debian packages rabbitmq-server, mosquitto and
#      mosquitto-clients when one of their programs is missing;
#   2. builds bin/cafe and runs `cafe setup --certs-only`: the demo CA and
#      the brokers' TLS certificates, copied to /etc/mosquitto/cafe/tls and
#      /etc/rabbitmq/cafe-tls (owned by each broker's user) BEFORE RabbitMQ
#      starts, since its TLS listener needs them;
#   3. installs deploy/rabbitmq/rabbitmq.conf as /etc/rabbitmq/rabbitmq.conf
#      (plain 127.0.0.1:5672, TLS 127.0.0.1:5671, management 127.0.0.1:15672);
#      a running node is restarted only when that file changed or its TLS
#      listener does not answer;
#   4. starts RabbitMQ (`rabbitmq-server -detached`) when 127.0.0.1:5672 does
#      not answer, and waits for it; enables the management plugin
#      (`rabbitmq-plugins enable rabbitmq_management`) if it is not;
#   5. enables every RabbitMQ feature flag if one is disabled (cafe's queues
#      are quorum queues);
#   6. runs `cafe setup --rabbitmq --mosquitto-dir
#      /etc/mosquitto/cafe`: this machine's auth key (created once, mode
#      0600), one RabbitMQ user per role with only its permissions (guest
#      deleted), the demo CA and the broker's TLS certificate, and Mosquitto's
#      first dynamic-security file (the logins of cafe's services);
#   7. installs deploy/mosquitto/cafe.acl (the topic rules) in
#      /etc/mosquitto/cafe, telling a running Mosquitto (SIGHUP) when it
#      changed;
#   8. makes the Mosquitto that listens on 127.0.0.1:1883 one started with
#      deploy/mosquitto/cafe.conf: a Mosquitto started with another config
#      (Debian's /etc/mosquitto/mosquitto.conf, say) is stopped with SIGTERM
#      and ours is started with `mosquitto -d -c <abs path>`; so is one
#      whose config file was edited after it started. It refuses anonymous
#      clients; the check at the end logs in as cafe-admin;
#   7. runs deploy/postgres.sh: PostgreSQL for the ledger (installed from
#      Debian's packages if missing, started, a login for this user).
# Neither broker is run under systemd: this works on machines without it.
#
# Environment (all optional):
#   RABBITMQ_START_TIMEOUT   seconds to wait for RabbitMQ to answer (default 180)
#   MOSQUITTO_START_TIMEOUT  seconds to wait for Mosquitto (default 15)
set -euo pipefail

# Debian puts the brokers in /usr/sbin, which a non-login shell may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

readonly AMQP_HOST=127.0.0.1 AMQP_PORT=5672 AMQPS_PORT=5671 MANAGEMENT_PORT=15672
readonly MQTT_HOST=127.0.0.1 MQTT_PORT=1883
readonly RABBITMQ_START_TIMEOUT="${RABBITMQ_START_TIMEOUT:-180}"
readonly MOSQUITTO_START_TIMEOUT="${MOSQUITTO_START_TIMEOUT:-15}"
readonly PACKAGES=(rabbitmq-server mosquitto mosquitto-clients)
readonly PROGRAMS=(rabbitmq-server rabbitmqctl mosquitto mosquitto_pub mosquitto_sub)
# Directories cafe.conf names; Mosquitto runs as this user after starting.
readonly MOSQUITTO_USER=mosquitto
readonly MOSQUITTO_DIRS=(/var/lib/mosquitto /run/mosquitto /var/log/mosquitto)
readonly MOSQUITTO_LOG=/var/log/mosquitto/cafe.log

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
readonly DEPLOY_DIR
readonly CAFE_CONF="$DEPLOY_DIR/mosquitto/cafe.conf"
readonly CAFE_ACL="$DEPLOY_DIR/mosquitto/cafe.acl"
readonly CAFE_RABBITMQ_CONF="$DEPLOY_DIR/rabbitmq/rabbitmq.conf"
readonly RABBITMQ_CONF=/etc/rabbitmq/rabbitmq.conf
# Where Mosquitto reads cafe's ACL and TLS files (cafe.conf names them).
readonly MOSQUITTO_CAFE_DIR=/etc/mosquitto/cafe
readonly REPO_DIR="$DEPLOY_DIR/.."
readonly CAFE_BIN="$REPO_DIR/bin/cafe"

# What messages start with (deploy/mosquitto/tier.sh, which sources this
# file for its functions, says "tier").
LOG_PREFIX="${LOG_PREFIX:-brokers}"

say() { printf '%s: %s\n' "$LOG_PREFIX" "$*"; }

# die WHAT NEXT...: print what went wrong and what to do about it, then exit.
die() {
	printf '%s: ERROR: %s\n' "$LOG_PREFIX" "$1" >&2
	shift
	local line
	for line in "$@"; do printf '  next: %s\n' "$line" >&2; done
	exit 1
}

# answers HOST PORT: true when something accepts TCP connections there.
answers() {
	# shellcheck disable=SC2016 # $1 and $2 are expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# port_free HOST PORT: true when nothing accepts TCP connections there.
port_free() { ! answers "$1" "$2"; }

# exited PID: true when process PID no longer exists.
exited() { ! kill -0 "$1" 2>/dev/null; }

# wait_until SECONDS CMD...: run CMD every 0.25 s until it succeeds or time is up.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.25
	done
}

need_root() {
	[[ $EUID -eq 0 ]] || die "$1 needs root (this is uid $EUID)" \
		"run it as root: sudo $0 ${ARGS[*]-}"
}

# --- packages ----------------------------------------------------------------

ensure_packages() {
	local missing=() p
	for p in "${PROGRAMS[@]}"; do
		command -v "$p" >/dev/null || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	say "missing programs: ${missing[*]}; installing Debian packages ${PACKAGES[*]}"
	need_root "installing packages"
	command -v apt-get >/dev/null || die "apt-get not found: this script expects Debian or Ubuntu" \
		"install RabbitMQ (3.10 or later) and Mosquitto 2.0 by hand, then run $0 again"
	say "+ apt-get update"
	apt-get update -q || die "apt-get update failed" \
		"check the network and /etc/apt/sources.list, then run $0 again"
	say "+ apt-get install -y ${PACKAGES[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" ||
		die "apt-get install ${PACKAGES[*]} failed" \
			"read apt's message above; fix it (dpkg --configure -a, disk space), then run $0 again"
	for p in "${PROGRAMS[@]}"; do
		command -v "$p" >/dev/null || die "$p is still missing after installing ${PACKAGES[*]}" \
			"check with: dpkg -L ${PACKAGES[*]} | grep bin/"
	done
}

# --- RabbitMQ ------------------------------------------------------------------

rabbitmq_log_hint() {
	echo "read the node's log: ls -t /var/log/rabbitmq/*.log | head -1 | xargs tail -n 50"
}

start_rabbitmq() {
	need_root "starting RabbitMQ"
	say "RabbitMQ does not answer on $AMQP_HOST:$AMQP_PORT; starting it: rabbitmq-server -detached"
	rabbitmq-server -detached || die "rabbitmq-server -detached failed" "$(rabbitmq_log_hint)"
	say "waiting up to ${RABBITMQ_START_TIMEOUT}s for RabbitMQ to answer on $AMQP_HOST:$AMQP_PORT"
	local t0=$SECONDS
	wait_until "$RABBITMQ_START_TIMEOUT" answers "$AMQP_HOST" "$AMQP_PORT" ||
		die "RabbitMQ did not answer on $AMQP_HOST:$AMQP_PORT within ${RABBITMQ_START_TIMEOUT}s" \
			"$(rabbitmq_log_hint)" \
			"check the node: rabbitmqctl status" \
			"if it is only slow, retry with RABBITMQ_START_TIMEOUT=600 $0"
	# The listener opens late in boot; await_startup confirms the app is up.
	rabbitmqctl -q await_startup --timeout "$RABBITMQ_START_TIMEOUT" ||
		die "rabbitmqctl await_startup failed although $AMQP_HOST:$AMQP_PORT answers" \
			"$(rabbitmq_log_hint)" "check the node: rabbitmqctl status"
	say "RabbitMQ is up ($((SECONDS - t0))s)"
}

ensure_rabbitmq() {
	answers "$AMQP_HOST" "$AMQP_PORT" || start_rabbitmq
	# cafe declares quorum queues: the quorum_queue flag (and the others a
	# node upgraded from an older version may lack) must be enabled.
	local flags disabled
	flags="$(rabbitmqctl -s list_feature_flags name state)" ||
		die "rabbitmqctl list_feature_flags failed" \
			"check that rabbitmqctl reaches the node: rabbitmqctl status" \
			"(rabbitmqctl needs the same Erlang cookie as the node: /var/lib/rabbitmq/.erlang.cookie)"
	disabled="$(awk '$2 == "disabled" { printf "%s ", $1 }' <<<"$flags")"
	if [[ -n $disabled ]]; then
		say "RabbitMQ feature flags disabled: $disabled; enabling all: rabbitmqctl enable_feature_flag all"
		rabbitmqctl -q enable_feature_flag all ||
			die "rabbitmqctl enable_feature_flag all failed" \
				"list them: rabbitmqctl list_feature_flags; enable one by one: rabbitmqctl enable_feature_flag NAME"
	fi
	say "RabbitMQ answers on $AMQP_HOST:$AMQP_PORT, all feature flags enabled"
}

# rabbitmq_config: cafe's rabbitmq.conf in place, with the certificates it
# names; a running node that does not run it yet is restarted (only then).
rabbitmq_config() {
	need_root "configuring RabbitMQ"
	build_cafe
	"$CAFE_BIN" setup --certs-only ||
		die "cafe setup --certs-only failed (its message is above)" "see: $CAFE_BIN setup --help"
	local changed=0
	if ! cmp -s "$CAFE_RABBITMQ_CONF" "$RABBITMQ_CONF"; then
		say "installing $CAFE_RABBITMQ_CONF as $RABBITMQ_CONF"
		install -m 0644 "$CAFE_RABBITMQ_CONF" "$RABBITMQ_CONF"
		changed=1
	fi
	answers "$AMQP_HOST" "$AMQP_PORT" || return 0 # ensure_rabbitmq starts it
	if ((changed)); then
		say "RabbitMQ's config changed: restarting the node to apply it"
		restart_rabbitmq
	elif ! answers "$AMQP_HOST" "$AMQPS_PORT"; then
		say "RabbitMQ runs without its TLS listener on $AMQP_HOST:$AMQPS_PORT: restarting the node"
		restart_rabbitmq
	fi
}

# ensure_management: the management plugin (the HTTP API on 127.0.0.1:15672).
ensure_management() {
	# rabbitmq-plugins takes seconds: ask it only when the API is silent.
	if ! answers "$AMQP_HOST" "$MANAGEMENT_PORT" &&
		! grep -qx rabbitmq_management <<<"$(rabbitmq-plugins -q list -e -m 2>/dev/null || true)"; then
		say "enabling RabbitMQ's management plugin: rabbitmq-plugins enable rabbitmq_management"
		rabbitmq-plugins -q enable rabbitmq_management >/dev/null ||
			die "rabbitmq-plugins enable rabbitmq_management failed" "$(rabbitmq_log_hint)"
	fi
	wait_until 60 answers "$AMQP_HOST" "$MANAGEMENT_PORT" ||
		die "RabbitMQ's management API does not answer on $AMQP_HOST:$MANAGEMENT_PORT" \
			"$(rabbitmq_log_hint)" "list plugins: rabbitmq-plugins list -e"
	answers "$AMQP_HOST" "$AMQPS_PORT" ||
		die "RabbitMQ's TLS listener does not answer on $AMQP_HOST:$AMQPS_PORT" \
			"$(rabbitmq_log_hint)" "check the files $RABBITMQ_CONF names: ls -l /etc/rabbitmq/cafe-tls"
	say "RabbitMQ: TLS on $AMQP_HOST:$AMQPS_PORT, management API on $AMQP_HOST:$MANAGEMENT_PORT"
}

stop_rabbitmq() {
	need_root "stopping RabbitMQ"
	if answers "$AMQP_HOST" "$AMQP_PORT" || rabbitmqctl -q ping >/dev/null 2>&1; then
		say "stopping RabbitMQ: rabbitmqctl stop"
		rabbitmqctl -q stop || die "rabbitmqctl stop failed" \
			"check the node: rabbitmqctl status; as a last resort: pkill -u rabbitmq beam.smp"
	fi
	wait_until 60 port_free "$AMQP_HOST" "$AMQP_PORT" ||
		die "$AMQP_HOST:$AMQP_PORT still answers 60s after rabbitmqctl stop" \
			"find the owner: ss -ltnp 'sport = :$AMQP_PORT'"
}

# --- cafe's own set-up: auth key, certificates, logins, users ----------------

# build_cafe: the cafe command, built from this checkout (go caches it).
build_cafe() {
	command -v go >/dev/null || die "go is not on PATH" "install Go 1.26 (https://go.dev/dl/) and run $0 again"
	(cd "$REPO_DIR" && go build -o "$CAFE_BIN" ./cmd/cafe) ||
		die "go build ./cmd/cafe failed (its message is above)" "fix the build, then run $0 again"
}

# cafe_setup: what the brokers need before cafe runs here (cafe setup --help):
# the auth key, the local CA and TLS certificates, Mosquitto's logins file
# (only when missing: afterwards the reconciler keeps it current), RabbitMQ's
# users; then the ACL file, which Mosquitto re-reads on SIGHUP.
cafe_setup() {
	need_root "setting up the brokers' users and files"
	build_cafe
	"$CAFE_BIN" setup --rabbitmq --mosquitto-dir "$MOSQUITTO_CAFE_DIR" ||
		die "cafe setup failed (its message is above)" "see: $CAFE_BIN setup --help"
	install -d -m 0755 "$MOSQUITTO_CAFE_DIR"
	if ! cmp -s "$CAFE_ACL" "$MOSQUITTO_CAFE_DIR/cafe.acl"; then
		install -m 0644 "$CAFE_ACL" "$MOSQUITTO_CAFE_DIR/cafe.acl"
		ACL_CHANGED=1
	fi
}

# --- Mosquitto -----------------------------------------------------------------

# listener_pids PORT: pids of mosquitto processes that own a listening TCP
# socket on PORT (in this network namespace). Reads /proc, needs no tools.
listener_pids() {
	local port_hex inodes pid fd link
	port_hex="$(printf '%04X' "$1")"
	# /proc/net/tcp: field 2 local address ADDR:PORT in hex, 4 state (0A is
	# LISTEN), 10 the socket's inode.
	inodes=" $(awk -v p=":$port_hex" '$4 == "0A" && substr($2, length($2) - 4) == p { printf "%s ", $10 }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null)"
	[[ $inodes != " " ]] || return 0
	for pid in $(mosquitto_pids); do
		for fd in /proc/"$pid"/fd/*; do
			link="$(readlink "$fd" 2>/dev/null)" || continue
			if [[ $link == socket:\[*\] && $inodes == *" ${link:8:-1} "* ]]; then
				echo "$pid"
				break
			fi
		done
	done
}

# mosquitto_pids: pids of every running mosquitto (not zombies).
mosquitto_pids() {
	local d comm state
	for d in /proc/[0-9]*; do
		{ read -r comm <"$d/comm"; } 2>/dev/null || continue # gone meanwhile
		[[ $comm == mosquitto ]] || continue
		# /proc/PID/stat: pid (comm) state ...; Z is a zombie.
		{ read -r _ _ state _ <"$d/stat"; } 2>/dev/null || continue
		[[ $state != Z ]] && echo "${d#/proc/}"
	done
	return 0
}

# config_of PID: the absolute path of the config file mosquitto PID was
# started with (-c or --config-file), or nothing.
config_of() {
	local pid=$1 args=() i conf=""
	mapfile -d '' -t args <"/proc/$pid/cmdline" 2>/dev/null || return 0
	for ((i = 1; i < ${#args[@]}; i++)); do
		case ${args[i]} in
		-c | --config-file) conf="${args[i + 1]:-}" ;;
		esac
	done
	[[ -n $conf ]] || return 0
	if [[ $conf != /* ]]; then
		conf="$(readlink "/proc/$pid/cwd" 2>/dev/null || echo /)/$conf"
	fi
	realpath -m -- "$conf"
}

# runs_our_config PID: true when mosquitto PID was started with a file that
# says what cafe.conf says (this checkout's, or an identical copy such as
# another clone's) and that file has not changed since: Mosquitto reads its
# config once, so an edit made after the start is not in force.
runs_our_config() {
	local pid=$1 conf started
	conf="$(config_of "$pid")"
	[[ -n $conf ]] || return 1
	cmp -s -- "$conf" "$CAFE_CONF" || return 1
	! edited_since_start "$pid" "$conf"
}

# edited_since_start PID FILE: true when FILE changed after process PID
# started. Mosquitto writes its pid file as it starts, so the pid file's
# mtime (nanoseconds) is the start; ps's whole seconds are the fallback.
edited_since_start() {
	local pid=$1 file=$2 pidfile started
	pidfile="$(awk '$1 == "pid_file" { print $2 }' "$file")"
	if [[ -n $pidfile && "$(cat -- "$pidfile" 2>/dev/null)" == "$pid" ]]; then
		[[ $file -nt $pidfile ]]
		return
	fi
	started=$(($(date +%s) - $(ps -o etimes= -p "$pid")))
	(($(stat -c %Y -- "$file") > started))
}

prepare_mosquitto_dirs() {
	id "$MOSQUITTO_USER" >/dev/null 2>&1 ||
		die "user $MOSQUITTO_USER does not exist (the mosquitto package creates it)" \
			"reinstall it: apt-get install --reinstall mosquitto"
	local d
	for d in "${MOSQUITTO_DIRS[@]}"; do
		install -d -o "$MOSQUITTO_USER" -g "$MOSQUITTO_USER" -m 0755 "$d"
	done
	# Files left by a Mosquitto that ran as root would be unwritable now.
	for d in /var/lib/mosquitto/cafe-mosquitto.db "$MOSQUITTO_LOG"; do
		[[ ! -e $d ]] || chown "$MOSQUITTO_USER:$MOSQUITTO_USER" "$d"
	done
}

# stop_mosquitto PID: SIGTERM (Mosquitto saves its database and exits), then
# wait for the process to end and the port to be free.
stop_mosquitto() {
	local pid=$1
	say "stopping mosquitto pid $pid (config: $(config_of "$pid")): kill -TERM $pid"
	kill -TERM "$pid" 2>/dev/null || true
	wait_until 15 exited "$pid" ||
		die "mosquitto pid $pid did not exit within 15s of SIGTERM" "kill it: kill -KILL $pid; then run $0 again"
	wait_until 5 port_free "$MQTT_HOST" "$MQTT_PORT" ||
		die "$MQTT_HOST:$MQTT_PORT still answers after mosquitto pid $pid exited" \
			"find the owner: ss -ltnp 'sport = :$MQTT_PORT'"
}

start_mosquitto() {
	need_root "starting Mosquitto"
	[[ -r $CAFE_CONF ]] || die "$CAFE_CONF is missing" "restore it: git checkout -- deploy/mosquitto/cafe.conf"
	prepare_mosquitto_dirs
	say "starting Mosquitto: mosquitto -d -c $CAFE_CONF"
	mosquitto -d -c "$CAFE_CONF" ||
		die "mosquitto -d -c $CAFE_CONF failed (its message is above)" \
			"check the config in the foreground: mosquitto -v -c $CAFE_CONF"
	wait_until "$MOSQUITTO_START_TIMEOUT" answers "$MQTT_HOST" "$MQTT_PORT" ||
		die "Mosquitto did not answer on $MQTT_HOST:$MQTT_PORT within ${MOSQUITTO_START_TIMEOUT}s" \
			"read its log: tail -n 30 $MOSQUITTO_LOG" \
			"or run it in the foreground to see why: mosquitto -v -c $CAFE_CONF"
}

# mqtt_check: a real MQTT exchange as cafe-admin (the broker's $SYS version
# topic); anonymous clients are refused.
mqtt_check() {
	local pw
	pw="$("$CAFE_BIN" credentials cafe-admin --password 2>/dev/null)" || return 1
	# shellcheck disable=SC2016 # a literal topic name, not a variable
	mosquitto_sub -h "$MQTT_HOST" -p "$MQTT_PORT" -i "cafe-brokers-$$" -u cafe-admin -P "$pw" \
		-t '$SYS/broker/version' -C 1 -W 5 2>/dev/null
}

ensure_mosquitto() {
	local pids pid
	[[ -r $CAFE_CONF ]] || die "$CAFE_CONF is missing; not touching the running Mosquitto" \
		"restore it: git checkout -- deploy/mosquitto/cafe.conf"
	pids="$(listener_pids "$MQTT_PORT")"
	if [[ -z $pids ]] && answers "$MQTT_HOST" "$MQTT_PORT"; then
		die "something that is not mosquitto listens on port $MQTT_PORT" \
			"find it: ss -ltnp 'sport = :$MQTT_PORT'; stop it, then run $0 again"
	fi
	local conf
	for pid in $pids; do
		if runs_our_config "$pid"; then
			conf="$(config_of "$pid")"
			[[ $conf == "$CAFE_CONF" ]] || conf="$conf (the same as $CAFE_CONF)"
			if [[ ${ACL_CHANGED:-0} == 1 ]]; then
				say "the ACL file changed: kill -HUP $pid (Mosquitto re-reads it; nobody is disconnected)"
				kill -HUP "$pid"
			fi
			say "Mosquitto (pid $pid) answers on $MQTT_HOST:$MQTT_PORT with $conf"
			return 0
		fi
	done
	for pid in $pids; do stop_mosquitto "$pid"; done
	start_mosquitto
	local version
	version="$(mqtt_check)" ||
		die "port $MQTT_PORT answers but an MQTT subscribe to \$SYS/broker/version failed" \
			"read its log: tail -n 30 $MOSQUITTO_LOG"
	say "Mosquitto ($version, pid $(listener_pids "$MQTT_PORT" | tr '\n' ' '| sed 's/ $//')) answers on $MQTT_HOST:$MQTT_PORT with $CAFE_CONF"
}

restart_mosquitto() {
	local pid
	[[ -r $CAFE_CONF ]] || die "$CAFE_CONF is missing; not touching the running Mosquitto" \
		"restore it: git checkout -- deploy/mosquitto/cafe.conf"
	for pid in $(listener_pids "$MQTT_PORT"); do stop_mosquitto "$pid"; done
	start_mosquitto
	say "Mosquitto restarted: $(mqtt_check || echo 'no MQTT answer yet')"
}

restart_rabbitmq() {
	stop_rabbitmq
	start_rabbitmq
}

# --- status --------------------------------------------------------------------

status() {
	local rc=0 v pid conf flags
	echo "RabbitMQ"
	if command -v rabbitmqctl >/dev/null; then
		echo "  package:  $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo unknown)"
		if answers "$AMQP_HOST" "$AMQP_PORT"; then
			v="$(rabbitmq-diagnostics -q server_version 2>/dev/null || echo '?')"
			echo "  server:   $v, node $(rabbitmqctl -q eval 'node().' 2>/dev/null || echo '?')"
			echo "  up:       yes, $AMQP_HOST:$AMQP_PORT answers"
			echo "  tls:      $AMQP_HOST:$AMQPS_PORT $(answers "$AMQP_HOST" "$AMQPS_PORT" && echo answers || echo 'does NOT answer (apply: '"$0"')')"
			echo "  mgmt:     $AMQP_HOST:$MANAGEMENT_PORT $(answers "$AMQP_HOST" "$MANAGEMENT_PORT" && echo answers || echo 'does NOT answer (apply: '"$0"')')"
			cmp -s "$CAFE_RABBITMQ_CONF" "$RABBITMQ_CONF" && v="ours" || v="NOT ours (apply: $0)"
			echo "  config:   $RABBITMQ_CONF, $v"
			flags="$(rabbitmqctl -s list_feature_flags name state 2>/dev/null || true)"
			echo "  flags:    $(awk '$2 == "disabled" { d = d " " $1 } END { print (d == "" ? "all enabled" : "disabled:" d) }' <<<"$flags")"
		else
			echo "  up:       NO, nothing answers on $AMQP_HOST:$AMQP_PORT (start it: $0)"
			rc=1
		fi
	else
		echo "  not installed (install and start it: $0)"
		rc=1
	fi
	echo "Mosquitto"
	if command -v mosquitto >/dev/null; then
		echo "  version:  $(mosquitto -h 2>/dev/null | awk 'NR == 1 { print $3 }')"
		if answers "$MQTT_HOST" "$MQTT_PORT"; then
			echo "  up:       yes, $MQTT_HOST:$MQTT_PORT answers ($(mqtt_check || echo 'but no MQTT answer'))"
			echo "  tls:      $MQTT_HOST:8883 $(answers "$MQTT_HOST" 8883 && echo answers || echo 'does NOT answer')"
		else
			echo "  up:       NO, nothing answers on $MQTT_HOST:$MQTT_PORT (start it: $0)"
			rc=1
		fi
		for pid in $(mosquitto_pids); do
			conf="$(config_of "$pid")"
			if runs_our_config "$pid"; then
				v="ours"
			elif [[ -n $conf ]] && cmp -s -- "$conf" "$CAFE_CONF"; then
				v="ours, but edited after it started (apply: $0 restart-mosquitto)"
			else
				v="NOT ours (switch: $0)"
			fi
			[[ " $(listener_pids "$MQTT_PORT" | tr '\n' ' ') " == *" $pid "* ]] && v="$v, owns port $MQTT_PORT"
			echo "  pid $pid:  config ${conf:-(none: built-in defaults)}, $v"
		done
	else
		echo "  not installed (install and start it: $0)"
		rc=1
	fi
	return "$rc"
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
	ARGS=("$@")
	case "${1:-ensure}" in
	ensure | up | "")
		ensure_packages
		rabbitmq_config
		ensure_rabbitmq
		ensure_management
		cafe_setup
		ensure_mosquitto
		bash "$DEPLOY_DIR/postgres.sh"
		;;
	status) status ;;
	restart-mosquitto)
		ensure_packages
		cafe_setup
		restart_mosquitto
		;;
	restart-rabbitmq)
		ensure_packages
		restart_rabbitmq
		ensure_rabbitmq
		ensure_management
		;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		die "unknown command: $1" "use one of: ensure (default), status, restart-mosquitto, restart-rabbitmq"
		;;
	esac
}

# Sourced (by deploy/mosquitto/tier.sh and deploy/rabbitmq/cluster.sh), it only defines its functions.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
