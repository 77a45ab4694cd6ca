# shellcheck shell=bash disable=SC2034
# (SC2034: variables below are used by the scripts that source this file.)
# The real one-node cluster of the e2e environment (DESIGN.md §10): containerd + runc + CNI,
# kubelet, kube-proxy, kube-scheduler, CoreDNS and the local-path provisioner, as plain
# processes and pods on this machine. Sourced by e2e/setup (images), e2e/up (start) and
# e2e/down (stop and clean). Source lib.sh first.
#
# Network: one Linux bridge, `lakeform0`, holds the node's address NODE_IP (10.244.0.1, the pod
# network's gateway). Pods get 10.244.0.0/24 from the CNI bridge plugin on that bridge; Services
# are 10.0.0.0/24 through kube-proxy (iptables). Everything pods must reach — the API server,
# MinIO, the catalog, PostgreSQL — listens on NODE_IP, and so the host reaches it there too.
# Nothing is routed off this machine (no masquerading, CoreDNS forwards nowhere).

NODE_IP="10.244.0.1"
NODE_BRIDGE="lakeform0"
POD_SUBNET="10.244.0.0/24"
CLUSTER_CIDR="10.244.0.0/16"
SERVICE_CIDR="10.0.0.0/24"
CLUSTER_DNS="10.0.0.10"
# Where MinIO's webhook target `LAKEFORM` delivers bucket notifications: the events Service of
# the operator a test installs with the chart (events.service.clusterIP; e2e/src/operator.rs).
EVENTS_ENDPOINT="10.0.0.200:8081"
# The node's name is the machine's hostname, as kubelet registers it by default.
NODE_NAME="$(hostname | tr '[:upper:]' '[:lower:]')"

# Persistent node state (images, kubelet's pod dirs, provisioned volumes) lives in the cache;
# sockets and containerd's runtime state in /run.
NODE_DIR="$LAKEFORM_CACHE/node"
NODE_RUN="$RUN_DIR/node"
CONTAINERD_STATE="/run/lakeform-containerd"
CONTAINERD_SOCK="$CONTAINERD_STATE/containerd.sock"
KUBELET_DIR="$NODE_DIR/kubelet"
LOCAL_PATH_DIR="$NODE_DIR/local-path"
CNI_CONF_DIR="$NODE_RUN/cni"
CNI_NETWORK="lakeform"
CNI_IPAM_DIR="/var/lib/cni/networks/$CNI_NETWORK"
IMAGES_DIR="$LAKEFORM_CACHE/images/node"

# The images the node runs, built by e2e/setup (fully qualified, never pulled).
E2E_IMAGE_PREFIX="localhost/lakeform-e2e"
E2E_IMAGE_TAG="e2e"
NODE_IMAGES=(pause coredns local-path-provisioner busybox)
PAUSE_IMAGE="$E2E_IMAGE_PREFIX/pause:$E2E_IMAGE_TAG"

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# e2e_image NAME: the full reference of one of the node images.
e2e_image() { printf '%s/%s:%s' "$E2E_IMAGE_PREFIX" "$1" "$E2E_IMAGE_TAG"; }

# ------------------------------------------------------------------------- images (setup)

node_images_present() {
  local name
  for name in "${NODE_IMAGES[@]}"; do
    [[ -s "$IMAGES_DIR/$name.tar" ]] || return 1
  done
}

# commit_archive CONTAINER NAME: commit a buildah working container as image NAME and write
# it as an OCI archive $IMAGES_DIR/NAME.tar (what `ctr images import` reads).
commit_archive() {
  local ctr="$1" name="$2" ref
  ref="$(e2e_image "$name")"
  buildah config --created-by "lakeform e2e/setup" "$ctr"
  buildah commit --quiet --rm "$ctr" "$ref" >/dev/null
  rm -f "$IMAGES_DIR/$name.tar"
  buildah push --quiet "$ref" "oci-archive:$IMAGES_DIR/$name.tar:$ref"
}

# build_scratch_image NAME BINARY PATH: a FROM-scratch image holding one static binary at PATH,
# its entrypoint.
build_scratch_image() {
  local name="$1" binary="$2" path="$3" ctr
  ctr="$(buildah from scratch)"
  buildah copy --quiet --chmod 0755 "$ctr" "$binary" "$path" >/dev/null
  buildah config --entrypoint "[\"$path\"]" --cmd '[]' "$ctr"
  commit_archive "$ctr" "$name"
}

# build_busybox_image: Debian's static busybox with its applets linked in /bin.
build_busybox_image() {
  local ctr mnt applet
  ctr="$(buildah from scratch)"
  mnt="$(buildah mount "$ctr")"
  mkdir -p "$mnt/bin" "$mnt/tmp" "$mnt/etc"
  chmod 1777 "$mnt/tmp"
  install -m 0755 /bin/busybox "$mnt/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$mnt/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$mnt/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$mnt/etc/group"
  buildah umount "$ctr" >/dev/null
  buildah config --cmd '["/bin/sh"]' --env PATH=/bin "$ctr"
  commit_archive "$ctr" busybox
}

# ------------------------------------------------------------------------- network (up)

# node_network: the bridge with NODE_IP, forwarding, and bridged traffic through iptables (so
# kube-proxy's rules apply between pods on the bridge). Idempotent.
node_network() {
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
  fi
  ip addr show dev "$NODE_BRIDGE" | grep -q "inet $NODE_IP/" ||
    ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  echo 1 >/proc/sys/net/ipv4/ip_forward
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
}

write_cni_config() {
  mkdir -p "$CNI_CONF_DIR"
  write_if_changed "$CNI_CONF_DIR/10-lakeform.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# ------------------------------------------------------------------------ containerd (up)

write_containerd_config() {
  mkdir -p "$NODE_RUN" "$NODE_DIR/containerd"
  write_if_changed "$NODE_RUN/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd"
state = "$CONTAINERD_STATE"

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM lacks CAP_SYS_RESOURCE: without this runc fails every container start
  # ("failed to update /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
EOF
}

containerd_healthy() { ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }

start_containerd() {
  write_cni_config
  write_containerd_config
  # kubelet comes back after containerd (e2e/up's order); its pods' mounts go first
  stop_component kubelet "$BIN_DIR/kubelet"
  node_clean_stale
  log "containerd: starting (socket $CONTAINERD_SOCK, root $NODE_DIR/containerd)"
  start_bg containerd containerd --config "$NODE_RUN/containerd.toml"
}

# node_clean_stale: what a killed node leaves behind (containerd not running): mounts of pod
# volumes and container root filesystems, network namespaces, IP allocations.
node_clean_stale() {
  local m
  # (kubelet also bind-mounts its root dir onto itself, shared)
  for m in $(awk -v a="$KUBELET_DIR" -v b="$CONTAINERD_STATE/" -v c="/run/netns/cni-" \
    'index($2, a) == 1 || index($2, b) == 1 || index($2, c) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -f /run/netns/cni-* 2>/dev/null || true
  rm -rf "$CNI_IPAM_DIR"
}

# import_image ARCHIVE REF: import an OCI archive into containerd's k8s.io namespace unless the
# image is there with the same manifest already.
import_image() {
  local archive="$1" ref="$2" want have
  want="$(tar -xOf "$archive" index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')"
  have="$(ctr_k8s images ls "name==$ref" 2>/dev/null | awk 'NR == 2 { print $3 }')"
  if [[ "$have" == "$want" ]]; then
    return 0
  fi
  log "containerd: importing $ref"
  ctr_k8s images import "$archive" >/dev/null
  # Pinned images are never garbage-collected (containerd >= 1.7 honours it; harmless before).
  ctr_k8s images label "$ref" io.cri-containerd.pinned=pinned >/dev/null 2>&1 || true
}

import_node_images() {
  local name
  for name in "${NODE_IMAGES[@]}"; do
    import_image "$IMAGES_DIR/$name.tar" "$(e2e_image "$name")"
  done
}

# --------------------------------------------------------------- kubelet, proxy, scheduler

write_kubelet_config() {
  write_if_changed "$NODE_RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
# Pods resolve only cluster names: no upstream resolver is handed to them.
resolvConf: ""
podCIDR: $POD_SUBNET
hairpinMode: hairpin-veth
# Images cannot be pulled again here: never garbage-collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
registerNode: true
maxPods: 110
EOF
}

kubelet_healthy() { [[ "$(curl -fsS --max-time 3 http://127.0.0.1:10248/healthz)" == ok ]]; }

start_kubelet() {
  write_kubelet_config
  mkdir -p "$KUBELET_DIR"
  log "kubelet: starting node $NODE_NAME ($NODE_IP)"
  start_bg kubelet "$BIN_DIR/kubelet" \
    --config "$NODE_RUN/kubelet.yaml" \
    --kubeconfig "$NODE_RUN/kubelet.kubeconfig" \
    --root-dir "$KUBELET_DIR" \
    --node-ip "$NODE_IP" \
    --hostname-override "$NODE_NAME" \
    --v 1
}

kube_proxy_healthy() { curl -fsS --max-time 3 -o /dev/null http://127.0.0.1:10256/healthz; }

start_kube_proxy() {
  write_if_changed "$NODE_RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $NODE_RUN/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
mode: iptables
clusterCIDR: $CLUSTER_CIDR
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  log "kube-proxy: starting (iptables mode)"
  start_bg kube-proxy "$BIN_DIR/kube-proxy" --config "$NODE_RUN/kube-proxy.yaml" --v 1
}

kube_scheduler_healthy() { [[ "$(curl -fsS -k --max-time 3 https://127.0.0.1:10259/healthz)" == ok ]]; }

start_kube_scheduler() {
  log "kube-scheduler: starting"
  start_bg kube-scheduler "$BIN_DIR/kube-scheduler" \
    --kubeconfig "$NODE_RUN/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$NODE_RUN/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$NODE_RUN/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 \
    --leader-elect=false \
    --v 1
}

# node_ready: the Node reports Ready.
node_ready() {
  [[ "$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# ------------------------------------------------------------------------------ add-ons

# apply_addons: CoreDNS and the local-path provisioner (default StorageClass), rendered from
# e2e/manifests/ with the node's images and paths, then waited for.
apply_addons() {
  local f
  mkdir -p "$LOCAL_PATH_DIR"
  for f in "$E2E_DIR"/manifests/*.yaml; do
    sed -e "s|@COREDNS_IMAGE@|$(e2e_image coredns)|g" \
      -e "s|@LOCAL_PATH_IMAGE@|$(e2e_image local-path-provisioner)|g" \
      -e "s|@BUSYBOX_IMAGE@|$(e2e_image busybox)|g" \
      -e "s|@CLUSTER_DNS@|$CLUSTER_DNS|g" \
      -e "s|@LOCAL_PATH_DIR@|$LOCAL_PATH_DIR|g" "$f"
    printf '\n---\n'
  done | "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" apply --server-side --force-conflicts \
    --field-manager lakeform-e2e -f - >>"$LOG_DIR/addons.log" 2>&1 ||
    fail_component addons "$LOG_DIR/addons.log" "applying e2e/manifests failed"
  local d
  for d in kube-system/coredns local-path-storage/local-path-provisioner; do
    "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" -n "${d%/*}" rollout status "deployment/${d#*/}" \
      --timeout 120s >>"$LOG_DIR/addons.log" 2>&1 ||
      fail_component addons "$LOG_DIR/addons.log" "deployment $d did not become available"
  done
}

# ------------------------------------------------------------------------------- down

# stop_node: the node processes, the pods' containers (so no shim outlives containerd), then
# what they set up: kube-proxy's iptables chains, mounts, network namespaces, IP allocations.
stop_node() {
  stop_component kube-scheduler "$BIN_DIR/kube-scheduler" &
  stop_component kube-proxy "$BIN_DIR/kube-proxy" &
  stop_component kubelet "$BIN_DIR/kubelet" &
  wait
  if containerd_healthy; then
    local t
    for t in $(ctr_k8s tasks ls -q 2>/dev/null); do
      ctr_k8s tasks kill --signal SIGKILL "$t" >/dev/null 2>&1 || true
    done
    sleep 1
    for t in $(ctr_k8s tasks ls -q 2>/dev/null); do
      ctr_k8s tasks delete --force "$t" >/dev/null 2>&1 || true
    done
  fi
  stop_component containerd "containerd --config"
  pkill -KILL -f "containerd-shim-runc-v2 -namespace k8s.io -address $CONTAINERD_SOCK" 2>/dev/null || true
  if [[ -x "$BIN_DIR/kube-proxy" ]]; then
    "$BIN_DIR/kube-proxy" --cleanup >>"$LOG_DIR/kube-proxy.log" 2>&1 || true
  fi
  kubelet_iptables_cleanup
  node_clean_stale
}

# kubelet_iptables_cleanup: the chains kubelet itself adds (kube-proxy --cleanup leaves them):
# KUBE-FIREWALL (hooked into INPUT and OUTPUT) and the canary/hint chains.
kubelet_iptables_cleanup() {
  local cmd table chain hook
  for cmd in iptables ip6tables; do
    command -v "$cmd" >/dev/null 2>&1 || continue
    for hook in INPUT OUTPUT; do
      while "$cmd" -w -t filter -D "$hook" -j KUBE-FIREWALL 2>/dev/null; do :; done
    done
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        "$cmd" -w -t "$table" -F "$chain" 2>/dev/null && "$cmd" -w -t "$table" -X "$chain" 2>/dev/null
      done
    done
  done
  return 0
}

# node_network_down: the bridge goes last, after everything listening on NODE_IP stopped.
node_network_down() {
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link del "$NODE_BRIDGE" || true
  fi
}
