#!/usr/bin/env bash
# deploy/rabbitmq/cluster.sh: a three-node RabbitMQ cluster on this one
# machine, beside (and without touching) the default node on 5672.
#
#   cluster.sh up            start the nodes, join them, create cafe's users
#   cluster.sh down          stop all three nodes (their data is kept)
#   cluster.sh status        each node: up or down, AMQP port, members, queues
#   cluster.sh urls          the CAFE_AMQP_URL of the cluster (comma-separated)
#   cluster.sh stop N        stop node N (1-3) gracefully (rabbitmqctl stop)
#   cluster.sh start N       start node N again and wait for it
#   cluster.sh kill N        kill -9 node N's Erlang VM
#   cluster.sh partition N   cut node N off from the other two (see below)
#   cluster.sh heal N        let node N see the others again
#   cluster.sh leader QUEUE  the node (1-3) that leads quorum queue QUEUE
#   cluster.sh usage         memory (RSS) and CPU time of each node
#   cluster.sh reset         down, then delete the nodes' data
#
# Node N (1..3) is cafe-N@localhost: AMQP on 127.0.0.1:568N, distribution
# on 2568N, management API on 127.0.0.1:1568N. Each node has its own
# directory $CLUSTER_DIR/cafe-N with its rabbitmq.conf (cluster.conf plus
# its listeners), rabbitmq-env.conf, enabled_plugins, mnesia, log and pid
# file, and runs as the rabbitmq user with the default node's Erlang cookie
# (/var/lib/rabbitmq/.erlang.cookie), so `rabbitmqctl -n cafe-N@localhost`
# reaches it like the default node. /usr/lib/rabbitmq/bin/rabbitmq-server
# is called directly: the /usr/sbin wrapper forces the default node's
# environment.
#
# Users, permissions and tags are the ones deploy/brokers.sh gives the
# default node (`cafe setup --rabbitmq`, here with --rabbitmq-node): they
# are cluster-wide, so they are applied once, on node 1.
#
# Partitions: no iptables here, and every node shares the loopback address,
# so `partition` cuts node N's Erlang distribution links instead: it gives
# node N a wrong cookie for each other node and disconnects them. Every
# handshake between N and the others then fails in both directions, as if
# the network dropped them, until `heal` restores the cookie. AMQP clients
# still reach node N (pause_minority makes it stop serving them).
#
# Environment (all optional):
#   CLUSTER_DIR            where the nodes live (default /var/lib/rabbitmq/cafe-cluster)
#   CLUSTER_START_TIMEOUT  seconds to wait for a node to boot (default 120)
set -euo pipefail

CLUSTER_SH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
readonly CLUSTER_SH_DIR
# say, die, answers, wait_until, need_root, build_cafe and CAFE_BIN.
# shellcheck source=deploy/brokers.sh
source "$CLUSTER_SH_DIR/../brokers.sh"

readonly CLUSTER_DIR="${CLUSTER_DIR:-/var/lib/rabbitmq/cafe-cluster}"
readonly CLUSTER_START_TIMEOUT="${CLUSTER_START_TIMEOUT:-120}"
readonly CLUSTER_CONF="$CLUSTER_SH_DIR/cluster.conf"
readonly NODES=(1 2 3)
readonly RMQ_BIN=/usr/lib/rabbitmq/bin
readonly RMQ_HOME=/var/lib/rabbitmq # the rabbitmq user's home: its cookie

say() { printf 'cluster: %s\n' "$*"; }

node_name() { echo "cafe-$1@localhost"; }
amqp_port() { echo $((5680 + $1)); }
dist_port() { echo $((25680 + $1)); }
mgmt_port() { echo $((15680 + $1)); }
node_dir() { echo "$CLUSTER_DIR/cafe-$1"; }

check_node() {
	[[ $1 =~ ^[1-3]$ ]] || die "no node '$1': the nodes are 1, 2 and 3" "for example: $0 status"
}

# ctl N ARGS...: rabbitmqctl against node N (root's rabbitmqctl runs as the
# rabbitmq user, whose cookie the nodes share).
ctl() {
	local n=$1
	shift
	rabbitmqctl -n "$(node_name "$n")" "$@"
}

node_up() { answers 127.0.0.1 "$(amqp_port "$1")"; }

node_pid() { cat "$(node_dir "$1")/pid" 2>/dev/null || true; }

# write_node_files N: node N's config, env file and plugins, from
# cluster.conf; ports are checked free first.
write_node_files() {
	local n=$1 dir
	dir="$(node_dir "$n")"
	install -d -o rabbitmq -g rabbitmq -m 0750 "$dir" "$dir/log"
	{
		echo "# Written by deploy/rabbitmq/cluster.sh from cluster.conf; edit that file."
		cat "$CLUSTER_CONF"
		echo
		echo "# This node's own listeners."
		echo "listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")"
		echo "management.tcp.port = $(mgmt_port "$n")"
	} >"$dir/rabbitmq.conf"
	{
		echo "# Written by deploy/rabbitmq/cluster.sh (node $(node_name "$n"))."
		echo "ERL_EPMD_ADDRESS=127.0.0.1"
		echo 'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"'
	} >"$dir/rabbitmq-env.conf"
	echo "[rabbitmq_management]." >"$dir/enabled_plugins"
	chown rabbitmq:rabbitmq "$dir/rabbitmq.conf" "$dir/rabbitmq-env.conf" "$dir/enabled_plugins"
}

check_ports_free() {
	local n=$1 port
	for port in "$(amqp_port "$n")" "$(dist_port "$n")" "$(mgmt_port "$n")"; do
		port_free 127.0.0.1 "$port" ||
			die "port $port (node $n) is taken by something else" "find it: ss -ltnp 'sport = :$port'"
	done
}

start_node() {
	local n=$1 dir
	check_node "$n"
	dir="$(node_dir "$n")"
	if node_up "$n"; then
		say "node $n ($(node_name "$n")) already answers on 127.0.0.1:$(amqp_port "$n")"
		return 0
	fi
	need_root "starting a cluster node"
	check_ports_free "$n"
	write_node_files "$n"
	say "starting node $n: $(node_name "$n"), AMQP 127.0.0.1:$(amqp_port "$n"), dist $(dist_port "$n"), management $(mgmt_port "$n")"
	(cd "$dir" && runuser -u rabbitmq -- env HOME="$RMQ_HOME" \
		RABBITMQ_NODENAME="$(node_name "$n")" \
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
		RABBITMQ_DIST_PORT="$(dist_port "$n")" \
		RABBITMQ_MNESIA_BASE="$dir/mnesia" \
		RABBITMQ_LOG_BASE="$dir/log" \
		RABBITMQ_PID_FILE="$dir/pid" \
		RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
		RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
		RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
		"$RMQ_BIN/rabbitmq-server" -detached) ||
		die "rabbitmq-server for node $n failed to start" "read its log: tail -n 50 $dir/log/$(node_name "$n").log"
}

await_node() {
	local n=$1
	wait_until "$CLUSTER_START_TIMEOUT" node_up "$n" ||
		die "node $n did not answer on 127.0.0.1:$(amqp_port "$n") within ${CLUSTER_START_TIMEOUT}s" \
			"read its log: tail -n 50 $(node_dir "$n")/log/$(node_name "$n").log"
	ctl "$n" -q await_startup --timeout "$CLUSTER_START_TIMEOUT" ||
		die "node $n answers but did not finish booting" "check it: rabbitmqctl -n $(node_name "$n") status"
}

# members N: the disc nodes of the cluster node N belongs to.
members() {
	ctl "$1" -q eval 'rabbit_mnesia:cluster_nodes(all).' 2>/dev/null || true
}

join() {
	local n=$1 first
	first="$(node_name 1)"
	if [[ "$(members "$n")" == *"$first"* ]]; then
		return 0
	fi
	say "joining node $n to $first: stop_app, join_cluster, start_app"
	ctl "$n" -q stop_app
	ctl "$n" -q join_cluster "$first" || die "node $n could not join $first" \
		"if node $n was in another cluster: $0 reset, then $0 up"
	ctl "$n" -q start_app
}

up() {
	ensure_packages
	local n
	for n in "${NODES[@]}"; do start_node "$n"; done
	for n in "${NODES[@]}"; do await_node "$n"; done
	join 2
	join 3
	ctl 1 -q enable_feature_flag all
	build_cafe
	"$CAFE_BIN" setup --rabbitmq --rabbitmq-node "$(node_name 1)" ||
		die "cafe setup --rabbitmq --rabbitmq-node $(node_name 1) failed (its message is above)"
	say "up: $(running_count) of 3 nodes running; CAFE_AMQP_URL=$(urls)"
}

running_count() {
	ctl 1 -q eval 'length(rabbit_nodes:all_running()).' 2>/dev/null || echo 0
}

stop_node() {
	local n=$1 pid
	check_node "$n"
	pid="$(node_pid "$n")"
	if node_up "$n" || ctl "$n" -q ping >/dev/null 2>&1; then
		say "stopping node $n: rabbitmqctl -n $(node_name "$n") stop"
		ctl "$n" -q stop || true
	fi
	[[ -z $pid ]] || wait_until 60 exited "$pid" || die "node $n (pid $pid) still runs 60s after stop" "kill it: $0 kill $n"
}

kill_node() {
	local n=$1 pid
	check_node "$n"
	pid="$(node_pid "$n")"
	if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
		die "node $n is not running (no live pid in $(node_dir "$n")/pid)"
	fi
	say "kill -9 node $n (pid $pid)"
	kill -KILL "$pid"
	wait_until 10 exited "$pid" || die "pid $pid survived kill -9"
}

down() {
	local n
	for n in "${NODES[@]}"; do stop_node "$n"; done
	say "down: the three nodes are stopped; the default node was not touched"
}

# others_term N: the Erlang list of the other nodes' names.
others_term() {
	local n=$1 m list=""
	for m in "${NODES[@]}"; do
		((m == n)) || list+="${list:+,}'$(node_name "$m")'"
	done
	echo "[$list]"
}

partition() {
	check_node "$1"
	say "partitioning node $1 from the others (wrong cookie for them, links dropped)"
	ctl "$1" -q eval "[begin erlang:set_cookie(N, 'cafe-partitioned'), erlang:disconnect_node(N) end || N <- $(others_term "$1")], ok." >/dev/null
}

heal() {
	check_node "$1"
	say "healing node $1 (its cookie for the others restored)"
	ctl "$1" -q eval "[erlang:set_cookie(N, erlang:get_cookie()) || N <- $(others_term "$1")], [net_adm:ping(N) || N <- $(others_term "$1")]." >/dev/null
}

# leader QUEUE: the number of the node leading quorum queue QUEUE (vhost /).
leader() {
	local q=$1 n out
	for n in "${NODES[@]}"; do
		node_up "$n" || continue
		out="$(ctl "$n" -q list_queues name leader --no-table-headers 2>/dev/null | awk -v q="$q" '$1 == q { print $2 }')" || continue
		if [[ $out =~ ^cafe-([1-3])@ ]]; then
			echo "${BASH_REMATCH[1]}"
			return 0
		fi
	done
	die "no running node knows a leader for queue $q" "list them: rabbitmqctl -n $(node_name 1) list_queues name leader members"
}

urls() {
	local n list=""
	for n in "${NODES[@]}"; do list+="${list:+,}amqp://127.0.0.1:$(amqp_port "$n")/"; done
	echo "$list"
}

usage_figures() {
	local n pid
	printf '%-18s %8s %10s %12s\n' node pid rss_mb cpu_seconds
	for n in "${NODES[@]}"; do
		pid="$(node_pid "$n")"
		if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
			ps -o pid=,rss=,times= -p "$pid" | awk -v name="$(node_name "$n")" '{ printf "%-18s %8s %10.1f %12s\n", name, $1, $2 / 1024, $3 }'
		else
			printf '%-18s %8s\n' "$(node_name "$n")" down
		fi
	done
}

cluster_status() {
	local n rc=0
	for n in "${NODES[@]}"; do
		if node_up "$n"; then
			echo "node $n: $(node_name "$n") up, AMQP 127.0.0.1:$(amqp_port "$n"), management 127.0.0.1:$(mgmt_port "$n"), pid $(node_pid "$n")"
		else
			echo "node $n: $(node_name "$n") DOWN (start: $0 up)"
			rc=1
		fi
	done
	for n in "${NODES[@]}"; do
		node_up "$n" || continue
		echo "members:  $(members "$n")"
		echo "running:  $(ctl "$n" -q eval 'rabbit_nodes:all_running().' 2>/dev/null)"
		echo "queues (name type leader members):"
		ctl "$n" -q list_queues name type leader members --no-table-headers 2>/dev/null | sed 's/^/  /'
		break
	done
	echo "CAFE_AMQP_URL=$(urls)"
	return "$rc"
}

reset() {
	down
	say "deleting $CLUSTER_DIR"
	rm -rf -- "$CLUSTER_DIR"
}

cluster_usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

cluster_main() {
	# shellcheck disable=SC2034 # need_root (brokers.sh) shows them
	ARGS=("$@")
	case "${1:-status}" in
	up) up ;;
	down) down ;;
	status) cluster_status ;;
	urls) urls ;;
	stop) stop_node "${2:?node number}" ;;
	start)
		start_node "${2:?node number}"
		await_node "$2"
		;;
	kill) kill_node "${2:?node number}" ;;
	partition) partition "${2:?node number}" ;;
	heal) heal "${2:?node number}" ;;
	leader) leader "${2:?queue name}" ;;
	usage) usage_figures ;;
	reset) reset ;;
	-h | --help | help) cluster_usage ;;
	*)
		cluster_usage >&2
		die "unknown command: $1" "use one of: up, down, status, urls, stop N, start N, kill N, partition N, heal N, leader QUEUE, usage, reset"
		;;
	esac
}

cluster_main "$@"
