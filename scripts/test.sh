#!/usr/bin/env bash
# Install, make sure Redis and PostgreSQL answer on 127.0.0.1 (starting or installing them if
# needed), then run the test suite: `scripts/test.sh [pytest args]`. Works with CI=true, no stdin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
PY=.venv/bin/python
mkdir -p artifacts

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi # -n: fail rather than ask for a password
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  echo "test: $2 did not start listening on 127.0.0.1:$1" >&2
  exit 1
}

install_services() {
  echo "test: installing redis-server and postgresql with apt-get"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server postgresql
}

ensure_redis() {
  if port_open 6379; then echo "test: Redis answers on 127.0.0.1:6379"; return; fi
  command -v redis-server >/dev/null 2>&1 || install_services
  echo "test: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
  wait_port 6379 Redis
}

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

ensure_postgres_running() {
  if port_open 5432; then echo "test: PostgreSQL answers on 127.0.0.1:5432"; return; fi
  [ -n "$(pg_version)" ] || install_services
  echo "test: starting PostgreSQL $(pg_version)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start
  wait_port 5432 PostgreSQL
}

pg_login_works() {
  if command -v psql >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -w -c 'select 1' >/dev/null 2>&1
  else
    "$PY" -c "import psycopg; psycopg.connect('host=127.0.0.1 user=postgres dbname=postgres connect_timeout=5').close()" 2>/dev/null
  fi
}

ensure_postgres_login() {
  if [ -n "${IMAGEBATCH_TEST_PG_URL:-}" ]; then echo "test: using IMAGEBATCH_TEST_PG_URL from the environment"; return; fi
  if pg_login_works; then
    export IMAGEBATCH_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    return
  fi
  # A fresh Debian cluster does not trust TCP logins: give postgres a password via the local socket.
  echo "test: TCP login refused; setting a password for the postgres role"
  as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
  export PGPASSWORD=postgres
  export IMAGEBATCH_TEST_PG_URL="postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres"
  pg_login_works || { echo "test: still cannot log in to PostgreSQL as postgres over TCP" >&2; exit 1; }
}

ensure_chromium() {
  # The dashboard tests drive Debian's Chromium with Playwright (no browser download needed).
  if [ -x /usr/bin/chromium ]; then return; fi
  echo "test: installing chromium with apt-get (dashboard tests)"
  if ! { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; then
    echo "test: could not install chromium; the dashboard browser tests will be skipped" >&2
  fi
}

ensure_redis
ensure_postgres_running
ensure_postgres_login
ensure_chromium

echo "test: python -m pytest -q $*"
status=0
"$PY" -m pytest -q --junitxml=artifacts/junit.xml "$@" </dev/null || status=$?
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests; that counts as a failure" >&2
  exit 1
fi
exit "$status"
