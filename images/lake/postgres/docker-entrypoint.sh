#!/usr/bin/env bash
# The entrypoint of localhost/lakeform-e2e/postgres (images/build-lake): the contract of the
# official `postgres` image's docker-entrypoint.sh, which the operator renders.
#
#   POSTGRES_PASSWORD   the superuser's password (required unless POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER       the superuser (default postgres)
#   POSTGRES_DB         a database created at initialisation (default: $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS  more initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  pg_hba.conf's method for `host all all all` (default scram-sha-256)
#   PGDATA              the data directory (created, mode 0700)
#   (each of the POSTGRES_* may also come from a file named by <VAR>_FILE)
#
# On the first start (no $PGDATA/PG_VERSION): initdb (local and loopback connections trusted,
# as initdb makes them), `host all all all <method>` appended to pg_hba.conf, then a server on
# the socket only creates POSTGRES_DB and runs /docker-entrypoint-initdb.d/*.sh|*.sql. Every
# later start keeps the data as it is. Then `exec "$@"` (the command: postgres). As root it
# hands the data directory to postgres (999) and re-runs itself as that user.
set -Eeuo pipefail

# file_env VAR [DEFAULT]: VAR from itself, from the file ${VAR}_FILE names, or DEFAULT.
file_env() {
  local var="$1" file_var="${1}_FILE" def="${2:-}" val
  if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
    echo "error: both $var and $file_var are set (but are exclusive)" >&2
    exit 1
  fi
  val="$def"
  if [[ -n "${!var:-}" ]]; then
    val="${!var}"
  elif [[ -n "${!file_var:-}" ]]; then
    val="$(<"${!file_var}")"
  fi
  export "$var"="$val"
  unset "$file_var"
}

# sql ARGS...: psql as the superuser over the socket, stopping at the first error.
sql() {
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

# init_database: a new cluster in $PGDATA, configured and initialised as described above.
init_database() {
  if [[ -z "$POSTGRES_PASSWORD" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
    echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set;" \
      "set it (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one)" >&2
    exit 1
  fi
  local initdb_args=() pwfile=""
  # shellcheck disable=SC2206 # POSTGRES_INITDB_ARGS are words, as in the official image
  initdb_args=(--username="$POSTGRES_USER" ${POSTGRES_INITDB_ARGS:-})
  if [[ -n "$POSTGRES_PASSWORD" ]]; then
    # A private file, not <(…): a container need not have /dev/fd.
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb_args+=(--pwfile="$pwfile")
  fi
  initdb "${initdb_args[@]}"
  [[ -z "$pwfile" ]] || rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

  export PGPASSWORD="$POSTGRES_PASSWORD"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
  if [[ "$POSTGRES_DB" != postgres ]] &&
    [[ -z "$(sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only \
      <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")" ]]; then
    sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        echo "running $f"
        # shellcheck disable=SC1090 # the image user's scripts
        . "$f"
        ;;
      *.sql) echo "running $f"; sql --dbname "$POSTGRES_DB" -f "$f" ;;
      *) [[ -e "$f" ]] && echo "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGPASSWORD
  echo "PostgreSQL init process complete; ready for start up."
}

main() {
  # `docker-entrypoint.sh -c max_connections=200`: options of postgres
  if [[ "${1:-}" == -* ]]; then
    set -- postgres "$@"
  fi
  if [[ "${1:-}" != postgres ]]; then
    exec "$@"
  fi
  : "${PGDATA:?PGDATA must name the data directory}"
  mkdir -p "$PGDATA"
  if [[ "$(id -u)" == 0 ]]; then
    chown -R postgres:postgres "$PGDATA"
    chmod 00700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
  fi
  # 0700 also after a volume's fsGroup made it group-accessible; postgres refuses anything else
  chmod 00700 "$PGDATA" 2>/dev/null || :
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
  if [[ -s "$PGDATA/PG_VERSION" ]]; then
    echo "PostgreSQL database directory appears to contain a database; skipping initialization"
  else
    init_database
  fi
  exec "$@"
}

main "$@"
