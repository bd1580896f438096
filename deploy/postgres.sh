#!/usr/bin/env bash
# deploy/postgres.sh: make PostgreSQL run on this machine the way cafe's
# ledger needs it. Idempotent; deploy/brokers.sh calls it, so `task up`
# and `task test` include it. When PostgreSQL already answers and the
# current user can log in, it only checks and returns.
#
# What it does, step by step:
#   1. installs Debian's postgresql package when pg_ctlcluster is missing;
#   2. starts the cluster (Debian's newest, `pg_ctlcluster VERSION main start`)
#      when 127.0.0.1:5432 does not answer, and waits for it;
#   3. makes a PostgreSQL role for the user running this script (cafe's
#      default URL, postgres://127.0.0.1:5432/cafe, names no user, so the
#      ledger logs in as the user it runs as), allowed to create databases;
#   4. if that role cannot log in over TCP from this host without a
#      password, adds one line to pg_hba.conf letting it (`host all ROLE
#      127.0.0.1/32 trust`, and ::1) and reloads: a development machine's
#      set-up; elsewhere give CAFE_POSTGRES_URL a user and password.
# The ledger creates the database (cafe) and its tables itself.
#
# Environment (optional): POSTGRES_START_TIMEOUT seconds (default 60).
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

readonly PG_HOST=127.0.0.1 PG_PORT=5432
readonly POSTGRES_START_TIMEOUT="${POSTGRES_START_TIMEOUT:-60}"
ROLE="$(id -un)"
readonly ROLE

say() { printf 'postgres: %s\n' "$*"; }
die() {
	printf 'postgres: %s\n' "$@" >&2
	exit 1
}
answers() { (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null; }
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
can_login() { psql "postgres://$PG_HOST:$PG_PORT/postgres?sslmode=disable" -Atqc 'select 1' >/dev/null 2>&1; }

ensure_package() {
	command -v pg_ctlcluster >/dev/null && command -v psql >/dev/null && return
	[[ $EUID -eq 0 ]] || die "PostgreSQL is not installed and installing needs root: run this as root (or: apt-get install postgresql)"
	say "installing postgresql from Debian's packages"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null || {
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
	} || die "apt-get install postgresql failed"
}

cluster_version() { pg_lsclusters --no-header 2>/dev/null | awk '$2 == "main" {print $1}' | sort -n | tail -1; }

ensure_running() {
	answers && return
	local v
	v="$(cluster_version)"
	[[ -n $v ]] || die "no PostgreSQL cluster named main (pg_lsclusters shows none): create one with pg_createcluster"
	say "starting PostgreSQL $v"
	pg_ctlcluster "$v" main start || die "pg_ctlcluster $v main start failed; see /var/log/postgresql/postgresql-$v-main.log"
	for ((i = 0; i < POSTGRES_START_TIMEOUT * 4; i++)); do
		answers && return
		sleep 0.25
	done
	die "PostgreSQL did not answer on $PG_HOST:$PG_PORT within ${POSTGRES_START_TIMEOUT}s"
}

ensure_role() {
	[[ $ROLE == postgres ]] && return
	as_postgres psql -Atqc "select 1 from pg_roles where rolname = '$ROLE'" | grep -q 1 && return
	say "creating the PostgreSQL role $ROLE (may create databases)"
	as_postgres createuser --createdb "$ROLE"
}

ensure_login() {
	can_login && return
	local hba
	hba="$(as_postgres psql -Atqc 'show hba_file')"
	say "letting $ROLE log in from this host without a password ($hba)"
	printf '%s\n' "host all $ROLE 127.0.0.1/32 trust" "host all $ROLE ::1/128 trust" | cat - "$hba" >"$hba.cafe" && mv "$hba.cafe" "$hba"
	chown postgres: "$hba"
	as_postgres psql -Atqc 'select pg_reload_conf()' >/dev/null
	can_login || die "$ROLE still cannot log in to PostgreSQL on $PG_HOST:$PG_PORT; check $hba"
}

main() {
	if answers && can_login; then
		return
	fi
	ensure_package
	ensure_running
	ensure_role
	ensure_login
	say "PostgreSQL answers on $PG_HOST:$PG_PORT for $ROLE"
}

main "$@"
