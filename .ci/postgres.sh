# shellcheck shell=bash
# Source me (bash): starts a throw-away PostgreSQL server for the tests.
#
#   source .ci/postgres.sh
#   ... EQUITY_LEDGER_TEST_PG_URL, EQUITY_LEDGER_TEST_PG_ADMIN_URL are exported ...
#   stop_test_postgres
#
# Server binaries: `initdb` on PATH, else the newest /usr/lib/postgresql/*/bin; when neither
# exists, Debian's `postgresql` package is installed with apt-get. As root the server runs as
# the `postgres` OS user (initdb refuses root). Data and socket live in one mktemp directory
# under /tmp, removed by stop_test_postgres. Safe under `set -euo pipefail`; on any failure the
# half-started server is stopped and `return 1` is given to the caller.

_tpg_fail() {
  echo "postgres: $*" >&2
  stop_test_postgres
  return 1
}

# The directory holding initdb, pg_ctl, postgres and psql (printed), or non-zero when none.
_tpg_bindir() {
  local p d
  if p=$(command -v initdb 2>/dev/null) && [ -n "$p" ]; then
    # /usr/local/bin/initdb may be a symlink into /usr/lib/postgresql/N/bin: resolve it so
    # that pg_ctl, postgres and psql of the same version sit beside it.
    d=$(dirname "$(readlink -f "$p")")
    if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

# Runs a server binary as the user that owns the data directory.
_tpg_as() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u postgres -- "$@")
    else
      (cd / && su postgres -s /bin/sh -c '"$0" "$@"' -- "$@")
    fi
  else
    "$@"
  fi
}

stop_test_postgres() {
  if [ -n "${_TPG_DIR:-}" ] && [ -d "$_TPG_DIR" ]; then
    if [ -f "$_TPG_DIR/data/postmaster.pid" ]; then
      _tpg_as "$_TPG_BIN/pg_ctl" -D "$_TPG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$_TPG_DIR"
  fi
  _TPG_DIR=""
  return 0
}

_tpg_start() {
  local bin dir port locale attempt apt_log psql

  # 1. Binaries, installing Debian's packages when there are none.
  if ! bin=$(_tpg_bindir); then
    echo "postgres: no server binaries found; installing Debian's postgresql" >&2
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null 2>&1 || { echo "postgres: not root and no sudo: install PostgreSQL's server" >&2; return 1; }
      sudo="sudo"
    fi
    apt_log=$(mktemp /tmp/equity-ledger-apt.XXXXXX)
    if ! { $sudo apt-get update -qq \
           && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
         >"$apt_log" 2>&1 </dev/null; then
      cat "$apt_log" >&2
      rm -f "$apt_log"
      echo "postgres: apt-get install postgresql FAILED" >&2
      return 1
    fi
    rm -f "$apt_log"
    bin=$(_tpg_bindir) || { echo "postgres: installed, but still no initdb found" >&2; return 1; }
  fi
  _TPG_BIN=$bin
  psql="$bin/psql"
  [ -x "$psql" ] || psql=$(command -v psql) || { echo "postgres: no psql found" >&2; return 1; }

  # 2. A private directory for data, socket and logs. /tmp, not $TMPDIR: the postgres user must
  #    reach it, and a Unix socket path has to stay under ~100 bytes.
  dir=$(mktemp -d /tmp/equity-ledger-pg.XXXXXX) || { echo "postgres: mktemp failed" >&2; return 1; }
  _TPG_DIR=$dir
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /bin/sh postgres || { _tpg_fail "could not create the postgres user"; return 1; }
    fi
    chown postgres: "$dir" && chmod 700 "$dir" || { _tpg_fail "could not chown $dir"; return 1; }
  fi

  # 3. initdb: C.UTF-8 when the C library has it, else C.
  locale=C.UTF-8
  if ! locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale=C; fi
  if ! _tpg_as "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
         --locale="$locale" >"$dir/initdb.log" 2>&1 </dev/null; then
    if [ "$locale" != C ]; then
      locale=C
      rm -rf "${dir:?}/data"
      _tpg_as "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C >"$dir/initdb.log" 2>&1 </dev/null \
        || { cat "$dir/initdb.log" >&2; _tpg_fail "initdb failed"; return 1; }
    else
      cat "$dir/initdb.log" >&2; _tpg_fail "initdb failed"; return 1
    fi
  fi

  # 4. Start on a free port (picked by the kernel; retried if someone takes it meanwhile).
  for attempt in 1 2 3; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()') \
      || { _tpg_fail "python3 could not pick a port"; return 1; }
    if _tpg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
         -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
         start >/dev/null 2>&1 </dev/null; then
      break
    fi
    _tpg_as "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    if [ "$attempt" = 3 ]; then
      cat "$dir/server.log" >&2 2>/dev/null || true
      _tpg_fail "server did not start"; return 1
    fi
  done
  if command -v pg_isready >/dev/null 2>&1; then
    local i
    for i in $(seq 1 60); do
      pg_isready -q -h 127.0.0.1 -p "$port" -U postgres && break
      [ "$i" = 60 ] && { cat "$dir/server.log" >&2; _tpg_fail "server not ready after 30 s"; return 1; }
      sleep 0.5
    done
  fi

  # 5. The test database.
  "$psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE equity_ledger_test" >/dev/null </dev/null \
    || { _tpg_fail "could not create database equity_ledger_test"; return 1; }

  export EQUITY_LEDGER_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/equity_ledger_test"
  export EQUITY_LEDGER_TEST_PG_ADMIN_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  echo "postgres: $("$bin/postgres" --version 2>/dev/null | sed 's/^postgres (PostgreSQL) /PostgreSQL /') on 127.0.0.1:$port, locale $locale, data in $dir"
}

_tpg_start || return 1 2>/dev/null || exit 1
