# shellcheck shell=bash disable=SC2034
# (SC2034: the path variables below are used by the scripts that source this file.)
# Shared helpers for e2e/setup, e2e/up and e2e/down. Source it; do not run it.
#
# Everything lives in $LAKEFORM_CACHE (outside the repository):
#   bin/      kube-apiserver kube-controller-manager kubectl etcd minio
#   lib/      iceberg-open-api-<v>.jar + the loopback launcher classes
#   venv/     Python venv (pyiceberg, duckdb + extension packages, boto3)
#   duckdb/extensions/  DuckDB extensions pre-installed from the pip packages
#   stamps/   one file per component: the pinned key it was built/fetched for
#   logs/     setup logs and one log per running component
#   run/      runtime state: pid files, data dirs, certs, kubeconfig, env

# Pinned versions (the one place to bump them).
E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$E2E_DIR/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.env
. "$E2E_DIR/versions.env"

LAKEFORM_CACHE="${LAKEFORM_CACHE:-$HOME/.cache/lakeform}"
export LAKEFORM_CACHE
BIN_DIR="$LAKEFORM_CACHE/bin"
LIB_DIR="$LAKEFORM_CACHE/lib"
STAMP_DIR="$LAKEFORM_CACHE/stamps"
LOG_DIR="$LAKEFORM_CACHE/logs"
RUN_DIR="$LAKEFORM_CACHE/run"
VENV_DIR="$LAKEFORM_CACHE/venv"
DUCKDB_EXT_DIR="$LAKEFORM_CACHE/duckdb/extensions"
M2_REPO="$LAKEFORM_CACHE/m2"
PKI_DIR="$RUN_DIR/pki"
ENV_FILE="$RUN_DIR/env"
ICEBERG_REST_JAR="$LIB_DIR/iceberg-open-api-$ICEBERG_REST_VERSION.jar"
ICEBERG_LAUNCHER_DIR="$LIB_DIR/iceberg-rest-launcher"
ICEBERG_LAUNCHER_CLASS="org.apache.iceberg.rest.LakeformLoopbackCatalogServer"
WAREHOUSE_BUCKET="lakeform-warehouse"
S3_REGION="us-east-1"

export GOTOOLCHAIN=local

# ---------------------------------------------------------------------------------- logging

_E2E_TAG="${_E2E_TAG:-e2e}"

log() { printf '[%s %s] %s\n' "$_E2E_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s %s] WARNING: %s\n' "$_E2E_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf '[%s %s] ERROR: %s\n' "$_E2E_TAG" "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

# show_log_tail FILE [LINES]: print the end of a log file, indented, to stderr.
show_log_tail() {
  local file="$1" lines="${2:-40}"
  if [[ -s "$file" ]]; then
    printf '%s\n' "----- last $lines lines of $file -----" >&2
    tail -n "$lines" "$file" | sed 's/^/  | /' >&2
    printf '%s\n' "----- end of $file -----" >&2
  else
    printf '%s\n' "(log $file is empty or missing)" >&2
  fi
}

# fail_component NAME LOGFILE MESSAGE: explain which component failed, show its log, exit 1.
fail_component() {
  local name="$1" logfile="$2" msg="$3"
  printf '[%s %s] ERROR: %s: %s (log: %s)\n' "$_E2E_TAG" "$(date +%H:%M:%S)" "$name" "$msg" "$logfile" >&2
  show_log_tail "$logfile" 40
  exit 1
}

# ----------------------------------------------------------------------------------- timing

# build_lakeform: the debug `lakeform` binary (and, already built by `make unit`, the unit tests).
# Always the workspace with its test targets: the same package selection and dev-dependencies as
# `cargo test --workspace`, so cargo resolves the same features and reuses every dependency it
# compiled there (`-p lakeform-operator --bins` alone recompiled most of them: ~7 min cold).
build_lakeform() {
  (cd "$REPO_ROOT" && cargo build --quiet --locked --workspace --bins --tests)
}
now_s() { date +%s.%N; }
# elapsed START: seconds since START (from now_s) with one decimal.
elapsed() { awk -v s="$1" -v e="$(now_s)" 'BEGIN { printf "%.1f", e - s }'; }

# ------------------------------------------------------------------------- hashing / stamps

# sha256_of FILE...: one hash over the contents of the given files (order matters).
sha256_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

stamp_file() { printf '%s/%s' "$STAMP_DIR" "$1"; }
# stamp_ok NAME KEY: true if the component's stamp records exactly KEY.
stamp_ok() {
  local f
  f="$(stamp_file "$1")"
  [[ -f "$f" ]] && [[ "$(cat "$f")" == "$2" ]]
}
stamp_write() {
  mkdir -p "$STAMP_DIR"
  printf '%s\n' "$2" >"$(stamp_file "$1").tmp"
  mv -f "$(stamp_file "$1").tmp" "$(stamp_file "$1")"
}

# ------------------------------------------------------------------------------------ ports

# port_is_free PORT: nothing listens on PORT at any address right now.
# SO_REUSEADDR as the servers themselves use it: TIME_WAIT leftovers of a component that was
# just stopped must not count as "in use" (or every restart would move it to a new port).
port_is_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    # the wildcard address: taken when anything listens on the port at any address (the
    # components listen on the node's address, some on loopback)
    s.bind(("0.0.0.0", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

_E2E_ASSIGNED_PORTS=" "
# free_port: print a TCP port currently free on every address, never one already handed out by
# this shell (so several free_port calls in one `up` never collide).
free_port() {
  local p i
  for i in $(seq 1 50); do
    p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1]); s.close()')"
    if [[ "$_E2E_ASSIGNED_PORTS" != *" $p "* ]]; then
      _E2E_ASSIGNED_PORTS+="$p "
      printf '%s\n' "$p"
      return 0
    fi
  done
  die "free_port: could not find a free loopback port after $i tries"
}

# claim_port PORT: remember PORT as handed out (used when reusing a port from ports.env).
claim_port() { _E2E_ASSIGNED_PORTS+="$1 "; }

# ---------------------------------------------------------------------------------- waiting

# wait_for TIMEOUT_SECONDS DESCRIPTION CMD [ARGS...]: run CMD every 0.25 s until it succeeds.
# Returns 1 (after a message) when TIMEOUT_SECONDS pass without success.
wait_for() {
  local timeout="$1" desc="$2"
  shift 2
  local deadline
  deadline=$(($(date +%s) + timeout))
  while true; do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if (($(date +%s) >= deadline)); then
      printf '[%s %s] timed out after %ss waiting for %s\n' "$_E2E_TAG" "$(date +%H:%M:%S)" "$timeout" "$desc" >&2
      return 1
    fi
    sleep 0.25
  done
}

# ---------------------------------------------------------------------------- processes

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# read_pid NAME: print the recorded pid of a component (empty if none).
read_pid() {
  local f
  f="$(pid_file "$1")"
  [[ -f "$f" ]] && tr -dc '0-9' <"$f"
  return 0
}

# is_running NAME MATCH: the recorded pid is alive and its command line contains MATCH
# (guards against a recycled pid after a reboot or a crash).
is_running() {
  local pid
  pid="$(read_pid "$1")"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# start_bg NAME CMD [ARGS...]: start CMD detached (own session, survives this shell),
# stdout+stderr appended to logs/NAME.log, pid written to run/NAME.pid.
start_bg() {
  local name="$1"
  shift
  local logf
  logf="$(log_file "$name")"
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  # The command line goes into the log with password/secret values redacted.
  printf '\n===== %s: starting %s =====\n%s\n' "$(date -Is)" "$name" \
    "$(printf '%s' "$*" | sed -E 's/((PASSWORD|SECRET|TOKEN)[A-Z_]*=)[^ ]*/\1<redacted>/g')" >>"$logf"
  # Not a process-group leader here (no job control), so setsid execs without forking and
  # $! is the component's own pid.
  # 9>&-: the component must not inherit the .up.lock descriptor, or it would hold the lock
  # for as long as it runs and every later e2e/up or e2e/down would wait forever.
  setsid "$@" </dev/null >>"$logf" 2>&1 9>&- &
  printf '%s\n' "$!" >"$(pid_file "$name")"
}

# stop_component NAME MATCH [SIGNAL]: stop a component by its pid file: SIGNAL (default TERM),
# wait up to 30 s, then KILL. Removes the pid file.
stop_component() {
  local name="$1" match="$2" sig="${3:-TERM}" pid i
  pid="$(read_pid "$name")"
  if [[ -z "$pid" ]]; then
    rm -f "$(pid_file "$name")"
    return 0
  fi
  if is_running "$name" "$match"; then
    log "stopping $name (pid $pid, SIG$sig)"
    kill -s "$sig" "$pid" 2>/dev/null || true
    for i in $(seq 1 120); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      warn "$name (pid $pid) did not stop after 30s; sending SIGKILL"
      kill -s KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$(pid_file "$name")"
}

# ------------------------------------------------------------------------------ misc

# write_if_changed FILE: atomically replace FILE with stdin unless the content is identical.
write_if_changed() {
  local f="$1" tmp
  tmp="$(mktemp "$f.XXXXXX")"
  cat >"$tmp"
  if [[ -f "$f" ]] && cmp -s "$tmp" "$f"; then
    rm -f "$tmp"
  else
    chmod 600 "$tmp"
    mv -f "$tmp" "$f"
  fi
}

# postgres_bin_dir: the bin dir of the installed PostgreSQL server (preferring POSTGRES_MAJOR).
postgres_bin_dir() {
  if [[ -x "/usr/lib/postgresql/$POSTGRES_MAJOR/bin/postgres" ]]; then
    printf '%s\n' "/usr/lib/postgresql/$POSTGRES_MAJOR/bin"
    return 0
  fi
  local d
  d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$d" ]] || return 1
  dirname "$d"
}

# mariadbd_path: the MariaDB server binary (Debian: /usr/sbin/mariadbd; its tools
# mariadb-install-db, mariadb-admin and mariadb are on PATH).
mariadbd_path() {
  local d
  for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
    [[ -x "$d/mariadbd" ]] && { printf '%s\n' "$d/mariadbd"; return 0; }
  done
  return 1
}

# java_major: the major version of `java` on PATH (e.g. 17), empty if none.
java_major() {
  command -v java >/dev/null 2>&1 || return 0
  java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}
