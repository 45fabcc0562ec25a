# shellcheck shell=bash
# Source me: starts a throw-away PostgreSQL server for the tests and exports its URLs.
#   source .ci/postgres.sh   ->  EQUITY_LEDGER_TEST_PG_URL, EQUITY_LEDGER_TEST_PG_ADMIN_URL, stop_test_postgres
# Installs Debian's server packages first when no server binaries are found.

_pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

if ! PG_BIN=$(_pg_bindir); then
  echo "postgres: no server binaries found, installing Debian's postgresql" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  PG_BIN=$(_pg_bindir) || { echo "postgres: install failed" >&2; return 1 2>/dev/null || exit 1; }
fi

PG_TMP=$(mktemp -d /tmp/equity-ledger-pg.XXXXXX)
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$PG_TMP"
  chmod 700 "$PG_TMP"
  _pg_as() { runuser -u postgres -- "$@"; }
else
  _pg_as() { "$@"; }
fi

_pg_as "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$PG_TMP/initdb.log" 2>&1 \
  || _pg_as "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$PG_TMP/initdb.log" 2>&1 \
  || { cat "$PG_TMP/initdb.log" >&2; return 1 2>/dev/null || exit 1; }
_pg_as "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
  -o "-p $PG_PORT -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1 2>/dev/null || exit 1; }
_pg_as "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAt -c "CREATE DATABASE equity_ledger_test" >/dev/null

export EQUITY_LEDGER_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/equity_ledger_test"
export EQUITY_LEDGER_TEST_PG_ADMIN_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
echo "postgres: $("$PG_BIN/postgres" --version) on 127.0.0.1:$PG_PORT (data in $PG_TMP)"

stop_test_postgres() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP/data" ]; then
    _pg_as "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
