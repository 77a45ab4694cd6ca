# lakeform developer entry points. `make test` is what CI runs (.ci/run).
#
# Build output and tool caches live outside the clone, so a fresh clone (CI) reuses them.
LAKEFORM_CACHE ?= $(HOME)/.cache/lakeform
export LAKEFORM_CACHE
export CARGO_TARGET_DIR ?= $(LAKEFORM_CACHE)/target
# Extra arguments for e2e/run, e.g. `make e2e FILTER=controlplane`.
FILTER ?=
# Extra arguments for images/build, e.g. `make image IMAGE_ARGS="--tag dev --import"`.
IMAGE_ARGS ?=

.PHONY: test lint unit crds image e2e-setup e2e quickstart

## test: everything — formatting, lints, unit tests, the quickstart, then the e2e suite on the
## local one-node cluster. The quickstart runs first and stays up: the suite must not mind it.
test: lint unit quickstart e2e

## lint: rustfmt and clippy with warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

## unit: unit and schema tests (no environment needed; the e2e suite is `test = false`).
unit:
	cargo test --workspace --locked

## crds: regenerate crds/ from the API types, and the Helm chart's copy (charts/lakeform/crds/).
crds:
	cargo run -q -p lakeform-operator -- crds --out crds
	rm -f charts/lakeform/crds/*.yaml
	mkdir -p charts/lakeform/crds
	cp crds/*.yaml charts/lakeform/crds/
	rm -f charts/lakeform/blueprints/*.yaml
	mkdir -p charts/lakeform/blueprints
	cp blueprints/*.yaml charts/lakeform/blueprints/

## image: the container image ghcr.io/lakeform/lakeform:<version> from the release binary,
## offline with buildah (images/build; needs root). `cargo build --release` first.
image:
	images/build $(IMAGE_ARGS)

## e2e-setup: build/fetch the control plane, the node (kubelet, kube-proxy, kube-scheduler,
## containerd, CoreDNS, local-path provisioner), Helm, MinIO, the Iceberg REST catalog and the
## Python clients into $(LAKEFORM_CACHE) (idempotent).
e2e-setup:
	e2e/setup

## e2e: the end-to-end suite (brings the environment up if needed).
e2e: e2e-setup
	e2e/run $(FILTER)

## quickstart: the README's first command (its own e2e/setup and e2e/up).
quickstart:
	e2e/quickstart
