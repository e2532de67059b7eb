#!/usr/bin/env bash
# test/pg.sh — make sure a throwaway PostgreSQL server is running for the
# tests and print its DSN as the last line of stdout (everything else goes to
# stderr):
#
#   export FLEXBRIDGE_TEST_POSTGRES_DSN="$(test/pg.sh | tail -n1)"
#   go test ./internal/directory/...
#
# Idempotent: if the server already runs, it only prints the DSN. Installs
# Debian's postgresql package if no server binaries are found (needs root).
# The server trusts every local connection and runs with fsync off: it is for
# tests only and listens on 127.0.0.1 only.
#
# Environment (all optional):
#   FLEXBRIDGE_PG_DIR   working folder        (default /tmp/flexbridge-pg)
#   FLEXBRIDGE_PG_PORT  TCP port              (default 54329)
#   FLEXBRIDGE_PG_DB    database to create    (default flexbridge_test)
#   stop                as the first argument: stop the server and exit
set -euo pipefail

PGDIR=${FLEXBRIDGE_PG_DIR:-/tmp/flexbridge-pg}
PORT=${FLEXBRIDGE_PG_PORT:-54329}
DB=${FLEXBRIDGE_PG_DB:-flexbridge_test}
DATA=$PGDIR/data
LOG=$PGDIR/postgres.log
DSN="postgres://postgres@127.0.0.1:${PORT}/${DB}?sslmode=disable"

log() { echo "pg.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# find_bindir prints the folder holding initdb/pg_ctl/postgres, if any.
find_bindir() {
	local c d
	for c in pg_ctl initdb; do
		if command -v "$c" >/dev/null 2>&1; then
			d=$(dirname "$(readlink -f "$(command -v "$c")")")
			if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
				echo "$d"
				return 0
			fi
		fi
	done
	# Debian keeps the server binaries out of PATH; take the newest version.
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

install_postgres() {
	[[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and I am not root; install the postgresql package"
	command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
	log "installing PostgreSQL with apt-get"
	# Don't let the package create and start its own cluster on port 5432.
	if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends postgresql >&2
}

BIN=$(find_bindir) || { install_postgres; BIN=$(find_bindir) || die "no PostgreSQL server binaries after installing"; }

# As root, run the server as the postgres OS user (initdb refuses root).
if [[ $(id -u) -eq 0 ]]; then
	id postgres >/dev/null 2>&1 || die "OS user postgres does not exist"
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

mkdir -p "$PGDIR"
if [[ $(id -u) -eq 0 ]]; then
	chown postgres: "$PGDIR"
fi
chmod 700 "$PGDIR"

# One pg.sh at a time per folder (parallel CI jobs, two terminals).
exec 9>"$PGDIR.lock"
if ! flock -w 120 9; then
	die "another pg.sh holds $PGDIR.lock for more than 2 minutes"
fi

if [[ ${1:-} == stop ]]; then
	if [[ -f $DATA/postmaster.pid ]]; then
		as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
	fi
	log "stopped"
	exit 0
fi

running() { as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

if [[ ! -f $DATA/PG_VERSION ]]; then
	log "initialising a cluster in $DATA"
	rm -rf "$DATA"
	as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync >&2
fi

if ! running; then
	if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
		die "port $PORT is taken by another program; set FLEXBRIDGE_PG_PORT"
	fi
	log "starting PostgreSQL ($("$BIN/postgres" --version)) on 127.0.0.1:$PORT"
	# 9>&-: the server must not inherit (and hold forever) our lock.
	as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o \
		"-c listen_addresses=127.0.0.1 -p $PORT -k $PGDIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
		>&2 9>&- || { tail -n 20 "$LOG" >&2 || true; die "PostgreSQL did not start (log: $LOG)"; }
fi

PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres)
for _ in $(seq 1 30); do
	"${PSQL[@]}" -d postgres -tAc "SELECT 1" >/dev/null 2>&1 && break
	sleep 1
done
"${PSQL[@]}" -d postgres -tAc "SELECT 1" >/dev/null || die "PostgreSQL does not answer on 127.0.0.1:$PORT (log: $LOG)"

if [[ $("${PSQL[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'") != 1 ]]; then
	log "creating database $DB"
	"${PSQL[@]}" -d postgres -c "CREATE DATABASE \"$DB\"" >&2
fi

echo "$DSN"
