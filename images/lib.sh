# shellcheck shell=bash disable=SC2034
# (SC2034: the settings below are used by the scripts that source this file.)
# images/lib.sh — what images/build (the lakeform image) and images/build-lake (the e2e images
# of the managed lake components) share: logging and timed stages, buildah helpers, the Debian
# base images made with mmdebstrap, `buildah bud`, the import into containerd and the lock that
# serializes both scripts. Source it; do not run it. Set IMAGES_DIR first (the images/ dir).

LAKEFORM_CACHE="${LAKEFORM_CACHE:-$HOME/.cache/lakeform}"
CACHE_DIR="$LAKEFORM_CACHE/images"
# The tag of log lines: `[image 12:00:00] …`.
LOG_TAG="${LOG_TAG:-image}"

BASE_IMAGE="docker.io/library/debian:bookworm-slim"
BASE_SUITE="bookworm"
# Records which base image was made here, and from which recipe: "<key> <image id>".
BASE_STAMP="$CACHE_DIR/base.stamp"
# Bump to rebuild every cached base (e.g. after changing the options below).
BASE_RECIPE_VERSION="1"
# mmdebstrap options: a small base (as Debian's own -slim images: no docs but the copyright
# files, no man pages, no translations), plus the CA certificates the binary needs (see
# Containerfile), so that its RUN step stays offline. Merged /usr by the hook (as debootstrap
# does it), not by the usrmerge package, which would pull in perl (~70 MB).
MMDEBSTRAP_OPTS=(
  --variant=minbase
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --include=ca-certificates
  --aptopt='APT::Install-Recommends "false"'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --skip=output/dev
)

# Options both scripts have (--import, --containerd-socket, --rebuild-base).
IMPORT=0
CONTAINERD_SOCKET="/run/containerd/containerd.sock"
REBUILD_BASE=0

# ---------------------------------------------------------------------------------- logging

# log/warn MESSAGE: a timestamped line on stderr.
log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s %s] WARNING: %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
# die MESSAGE: an error line on stderr, then exit 1.
die() {
  printf '[%s %s] ERROR: %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

# run_logged LOGFILE CMD...: run CMD with its output in LOGFILE; on failure show the log's
# end and exit 1.
run_logged() {
  local logfile="$1"
  shift
  if ! "$@" >"$logfile" 2>&1; then
    printf '[%s %s] ERROR: "%s" failed (log: %s)\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" "$logfile" >&2
    tail -n 40 "$logfile" | sed 's/^/  | /' >&2
    exit 1
  fi
}

# now_s: the current time in seconds, with nanoseconds.
now_s() { date +%s.%N; }
# elapsed START: seconds since START (from now_s) with one decimal.
elapsed() { awk -v s="$1" -v e="$(now_s)" 'BEGIN { printf "%.1f", e - s }'; }

TIMINGS=()
# stage_done NAME START WHAT: log that stage NAME (begun at START) ended with WHAT; keep its
# time for the summary.
stage_done() {
  local t
  t="$(elapsed "$2")"
  TIMINGS+=("$1 ${t}s ($3)")
  log "$1: $3 in ${t}s"
}

# log_timings: the summary of every stage's time.
log_timings() {
  local t
  for t in "${TIMINGS[@]}"; do log "  $t"; done
}

# usage: print the help text (the header of the running script).
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------------- helpers

# require_tools [TOOL:DEBIAN_PACKAGE...]: fail early, naming the Debian package, when buildah,
# mmdebstrap, flock, (with --import) ctr or one of the given tools is missing; and unless root.
require_tools() {
  local tool pkg missing=()
  for tool in buildah:buildah mmdebstrap:mmdebstrap flock:util-linux "$@"; do
    pkg="${tool#*:}"
    tool="${tool%%:*}"
    command -v "$tool" >/dev/null || missing+=("$tool (apt-get install $pkg)")
  done
  if ((IMPORT)); then
    command -v ctr >/dev/null || missing+=("ctr (apt-get install containerd)")
  fi
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]}"
  [[ "$(id -u)" == 0 ]] || die "run as root: buildah's storage and containerd's socket need it"
}

# lock_builds: one images/build or images/build-lake at a time (they share the base image,
# buildah's storage and the cache), waiting for a running one.
lock_builds() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/build.lock"
  if ! flock -n 9; then
    log "waiting for another images/build or images/build-lake to finish"
    flock 9
  fi
}

# check_storage: buildah's default storage driver (overlay) where it works; vfs (slow: a full
# copy per layer) only where it does not and the user chose no driver.
check_storage() {
  if [[ -z "${STORAGE_DRIVER:-}" ]] && ! buildah info >"$CACHE_DIR/buildah-info.log" 2>&1; then
    warn "buildah's default storage does not work (log: $CACHE_DIR/buildah-info.log): using vfs"
    export STORAGE_DRIVER=vfs
  fi
}

# image_id NAME: the id (config digest, sha256:…) of a local buildah image; empty if absent.
image_id() {
  local id
  id="$(buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true)"
  [[ -z "$id" || "$id" == sha256:* ]] || id="sha256:$id"
  printf '%s\n' "$id"
}

# image_has_name ID: whether the local image ID still has a name (another tag).
image_has_name() {
  buildah images --all --no-trunc --format '{{.ID}} {{.Name}}' |
    awk -v id="$1" '($1 == id || $1 == "sha256:" id) && $2 != "<none>" { found = 1 } END { exit !found }'
}

# image_size NAME: the image's size as `buildah images` prints it.
image_size() {
  buildah images --format '{{.Size}}' "$1" 2>/dev/null | head -n1
}

# The working container of build_debian_image while it exists; removed on exit if left behind.
WORK_CONTAINER=""
# cleanup: remove what an interrupted run leaves behind (runs on exit).
cleanup() {
  if [[ -n "$WORK_CONTAINER" ]]; then
    buildah rm "$WORK_CONTAINER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# ------------------------------------------------------------------------------------ base

# debian_mirrors: the apt source lines for the base (`deb URI SUITE main`): the bookworm,
# bookworm-updates and bookworm-security suites of the Debian mirrors configured in
# /etc/apt (deb822 *.sources and one-line *.list files). $LAKEFORM_DEBIAN_MIRROR overrides
# the main mirror (then no updates/security lines are added).
debian_mirrors() {
  if [[ -n "${LAKEFORM_DEBIAN_MIRROR:-}" ]]; then
    printf 'deb %s %s main\n' "$LAKEFORM_DEBIAN_MIRROR" "$BASE_SUITE"
    return
  fi
  local files=()
  [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  local f
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && files+=("$f")
  done
  ((${#files[@]})) || return 0
  # Print "URI SUITE" for each configured (uri, suite) pair of type deb, both formats.
  awk '
    function flush() {
      if (type ~ /(^| )deb( |$)/ && uris != "" && suites != "") {
        n = split(uris, u, " "); m = split(suites, s, " ")
        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j]
      }
      type = ""; uris = ""; suites = ""
    }
    FNR == 1 { flush() }
    /^[[:space:]]*#/ { next }
    FILENAME ~ /\.sources$/ {
      if ($0 ~ /^[[:space:]]*$/) { flush(); next }
      if (tolower($1) == "types:") { $1 = ""; type = $0 }
      if (tolower($1) == "uris:") { $1 = ""; uris = $0 }
      if (tolower($1) == "suites:") { $1 = ""; suites = $0 }
      next
    }
    $1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      print $i, $(i + 1)
    }
    END { flush() }' "${files[@]}" |
    awk -v suite="$BASE_SUITE" '
      $2 == suite || $2 == suite "-updates" || $2 == suite "-security" {
        if (!seen[$2]++) printf "deb %s %s main\n", $1, $2
      }'
}

# build_debian_image STAGE IMAGE STAMP PREFIX MMDEBSTRAP_OPTION...: make IMAGE, a Debian
# $BASE_SUITE from `mmdebstrap OPTIONS` (tarball cached as $CACHE_DIR/PREFIX-<key>.tar, <key>
# hashing the recipe, the mirrors and the options), unless an image of that name exists that was
# either made from the current recipe (STAMP says "<key> <image id>") or not made here at all
# (a real pull of debian:bookworm-slim is kept). --rebuild-base remakes it.
build_debian_image() {
  local stage="$1" image="$2" stamp_file="$3" prefix="$4"
  shift 4
  local start mirrors key tarball id stamp
  start="$(now_s)"
  mirrors="$(debian_mirrors)"
  [[ "$mirrors" == *" $BASE_SUITE main"* ]] ||
    die "no Debian mirror for $BASE_SUITE in /etc/apt/sources.list{,.d/} (set LAKEFORM_DEBIAN_MIRROR=http://deb.debian.org/debian)"
  key="$(printf '%s\n' "$BASE_RECIPE_VERSION" "$BASE_SUITE" "$mirrors" "$@" | sha256sum | cut -c1-16)"
  tarball="$CACHE_DIR/$prefix-$key.tar"

  if ((REBUILD_BASE)); then
    rm -f "$tarball"
  else
    id="$(image_id "$image")"
    stamp="$(cat "$stamp_file" 2>/dev/null || true)"
    if [[ -n "$id" && "$stamp" == "$key $id" ]]; then
      stage_done "$stage" "$start" "$image present (recipe $key)"
      return
    elif [[ -n "$id" && "$stamp" != *" $id" ]]; then
      stage_done "$stage" "$start" "$image present, not made here: used as is (--rebuild-base to replace it)"
      return
    elif [[ -n "$id" ]]; then
      log "$stage: $image is from another recipe (${stamp%% *}, want $key): remaking it"
    fi
  fi

  mkdir -p "$CACHE_DIR"
  if [[ -s "$tarball" && -f "$tarball.ok" ]]; then
    log "$stage: reusing $tarball"
  else
    log "$stage: mmdebstrap $BASE_SUITE from: $(tr '\n' ';' <<<"$mirrors")"
    rm -f "$tarball" "$tarball.ok" "$tarball.tmp.tar"
    # Keep the cache lean: tarballs of this image's earlier recipes go (PREFIX-<16 hex>.tar).
    find "$CACHE_DIR" -maxdepth 1 -name "$prefix-????????????????.tar*" -delete
    local mirror_args=()
    mapfile -t mirror_args <<<"$mirrors"
    run_logged "$CACHE_DIR/$prefix-mmdebstrap.log" \
      mmdebstrap "$@" "$BASE_SUITE" "$tarball.tmp.tar" "${mirror_args[@]}"
    mv -f "$tarball.tmp.tar" "$tarball"
    touch "$tarball.ok"
    log "$stage: tarball $(du -h "$tarball" | cut -f1) in $(elapsed "$start")s"
  fi

  WORK_CONTAINER="$(buildah from scratch)"
  run_logged "$CACHE_DIR/$prefix-import.log" buildah add "$WORK_CONTAINER" "$tarball" /
  # The configuration Debian's images have: PATH (Jobs run `lakeform` by name), bash.
  buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd '["bash"]' \
    --created-by "images: mmdebstrap $BASE_SUITE (recipe $key)" \
    "$WORK_CONTAINER"
  run_logged "$CACHE_DIR/$prefix-commit.log" buildah commit --rm "$WORK_CONTAINER" "$image"
  WORK_CONTAINER=""
  printf '%s %s\n' "$key" "$(image_id "$image")" >"$stamp_file"
  stage_done "$stage" "$start" "$image made ($(image_size "$image"), recipe $key)"
}

# build_base: $BASE_IMAGE (docker.io/library/debian:bookworm-slim), the FROM of every image.
build_base() {
  build_debian_image base "$BASE_IMAGE" "$BASE_STAMP" "debian-$BASE_SUITE" "${MMDEBSTRAP_OPTS[@]}"
}

# ----------------------------------------------------------------------------------- image

# bud_image STAGE LOGFILE IMAGE BUD_ARGS...: `buildah bud BUD_ARGS` tagged IMAGE, offline;
# the image IMAGE named before goes when the tag moves.
bud_image() {
  local stage="$1" logfile="$2" image="$3" start id_before id
  shift 3
  start="$(now_s)"
  id_before="$(image_id "$image")"
  # --layers: unchanged steps come from the cache, so the same inputs give the same image id.
  # --pull=never: the bases are local, there is no registry. --isolation chroot: RUN steps need
  # no runc, namespaces or CNI network (oci isolation works here too, as root; chroot is
  # simpler and shares the host's network should a base lack CA certificates and apt-get run).
  run_logged "$logfile" buildah bud --layers --pull=never --isolation chroot --tag "$image" "$@"
  id="$(image_id "$image")"
  [[ -n "$id" ]] || die "buildah bud succeeded but $image is missing (log: $logfile)"
  if [[ "$id" == "$id_before" ]]; then
    stage_done "$stage" "$start" "$image unchanged (${id:7:12}, $(image_size "$image"))"
    return
  fi
  # The image this tag named before, with the intermediate images of its build (buildah
  # removes parents left dangling, up to the first one still in use): else every new input
  # would leave its layers behind.
  if [[ -n "$id_before" ]] && ! image_has_name "$id_before"; then
    buildah rmi "$id_before" >/dev/null 2>&1 ||
      warn "$stage: could not remove the previous $image (${id_before:7:12}); \`buildah rmi\` it by hand"
  fi
  stage_done "$stage" "$start" "$image built (${id:7:12}, $(image_size "$image"))"
}

# ---------------------------------------------------------------------------------- import

# containerd_config_digest IMAGE: the config digest (= buildah's image id) of IMAGE in
# containerd's k8s.io namespace; empty when absent.
containerd_config_digest() {
  local image="$1" target
  target="$(ctr --address "$CONTAINERD_SOCKET" -n k8s.io images ls "name==$image" 2>/dev/null |
    awk -v n="$image" '$1 == n { print $3 }')"
  [[ "$target" == sha256:* ]] || return 0
  # The manifest names its config; an index (multi-platform) never matches: re-import.
  ctr --address "$CONTAINERD_SOCKET" -n k8s.io content get "$target" 2>/dev/null |
    tr -d ' \n' | grep -o '"config":{[^}]*}' | grep -o 'sha256:[0-9a-f]\{64\}' | head -n1 || true
}

# import_image STAGE IMAGE NAME: load IMAGE into containerd's k8s.io namespace unless it is
# there (same config digest = image id); NAME names the archive and the logs in $CACHE_DIR.
import_image() {
  local stage="$1" image="$2" name="$3" start id have archive
  start="$(now_s)"
  [[ -S "$CONTAINERD_SOCKET" ]] || die "no containerd socket at $CONTAINERD_SOCKET (--containerd-socket)"
  id="$(image_id "$image")"
  have="$(containerd_config_digest "$image")"
  if [[ -n "$have" && "$have" == "$id" ]]; then
    stage_done "$stage" "$start" "containerd already has $image (${id:7:12})"
    return
  fi
  archive="$CACHE_DIR/$name.oci.tar"
  rm -f "$archive"
  # (buildah 1.28 gzips the layers whatever --disable-compression says: ~5 s for a new debug
  # binary's layer; unchanged layers come from its blob cache.)
  run_logged "$CACHE_DIR/$name-push.log" buildah push "$image" "oci-archive:$archive:$image"
  log "$stage: archive $(du -h "$archive" | cut -f1) in $(elapsed "$start")s"
  run_logged "$CACHE_DIR/$name-ctr-import.log" \
    ctr --address "$CONTAINERD_SOCKET" -n k8s.io images import "$archive"
  rm -f "$archive"
  # Pinned: the kubelet's image GC leaves it alone (containerd >= 1.7 reports the label).
  ctr --address "$CONTAINERD_SOCKET" -n k8s.io images label "$image" io.cri-containerd.pinned=pinned \
    >/dev/null 2>&1 || true
  have="$(containerd_config_digest "$image")"
  [[ "$have" == "$id" ]] ||
    die "after the import containerd has ${have:-no} $image, expected $id (log: $CACHE_DIR/$name-ctr-import.log)"
  stage_done "$stage" "$start" "imported $image into containerd (k8s.io, ${id:7:12})"
}
