#!/usr/bin/env bash
# Make sure Debian's PostgreSQL server binaries (initdb, pg_ctl) are present: `make test` runs the results
# store's tests against a real, throwaway PostgreSQL cluster (tests/pg_server.py starts it in a temp dir on
# 127.0.0.1 at a free port and removes it). No system cluster is created or started by this script.
#
#   bash scripts/ensure_postgres.sh                 install the server package if it is missing (root + apt-get)
#   bash scripts/ensure_postgres.sh --cleanup DIR   stop every throwaway server left under DIR, delete DIR
#                                                   (make test's exit trap: nothing survives a failed run)
set -euo pipefail

if [ "${1:-}" = "--cleanup" ]; then
  dir=${2:?usage: ensure_postgres.sh --cleanup DIR}
  for pidfile in "$dir"/pgtest-*/data/postmaster.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(head -n 1 "$pidfile")
    kill -QUIT "$pid" 2>/dev/null || true   # immediate shutdown
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "ensure_postgres: throwaway PostgreSQL $pid did not stop in 10 s, killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
  exit 0
fi

have_server() {
  if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then return 0; fi
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then return 0; fi
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if have_server; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's PostgreSQL server for the results store's tests ..."
  # the tests make their own throwaway cluster: tell postgresql-common not to create (and start) a system one
  mkdir -p /etc/postgresql-common
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold postgresql >/dev/null
  have_server && echo "PostgreSQL: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
else
  echo "WARNING: PostgreSQL server binaries (initdb, pg_ctl) missing and cannot be installed (not root or no" \
       "apt-get); install Debian's postgresql package. make test requires them and will fail." >&2
fi
