# kubectl-tele. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
KIND := hack/kind

# A local build's version names its source: the commit, plus a digest of any
# uncommitted change, so an image built from edited source gets a new tag.
GIT_DESC := $(shell git describe --tags --always 2>/dev/null || echo dev)
GIT_DIRTY := $(shell git diff HEAD --quiet 2>/dev/null || git diff HEAD | sha256sum | cut -c1-8)
VERSION ?= $(GIT_DESC)$(if $(GIT_DIRTY),-dirty-$(GIT_DIRTY))
# The one registry releases are pushed to: a release build (VERSION=v1.2.3)
# defaults to its image there, so a krew install needs no flag. A local build
# points at the local cluster's registry (hack/kind/lib.sh: REGISTRY).
RELEASE_REGISTRY ?= ghcr.io/kubectl-tele
LOCAL_REGISTRY := 10.201.0.1:5000
REGISTRY ?= $(if $(filter v%,$(VERSION)),$(RELEASE_REGISTRY),$(LOCAL_REGISTRY))
IMAGE_REPO ?= $(REGISTRY)/kubectl-tele
IMAGE := $(IMAGE_REPO):$(VERSION)
# The image's platforms; bin/linux_ARCH/kubectl-tele is each one's binary.
IMAGE_PLATFORMS := linux/amd64 linux/arm64
# The cluster CA trusted for the local registry (its certificate comes from it).
CLUSTER_CA := $(KIND)/.cluster/pki/ca.crt
LDFLAGS := -s -w -X github.com/kubectl-tele/kubectl-tele/pkg/version.Version=$(VERSION) \
	-X github.com/kubectl-tele/kubectl-tele/pkg/version.ImageRepo=$(IMAGE_REPO)
export CGO_ENABLED := 0

# krew wants a semantic version: a tag (v1.2.3) as it is, a local build as a
# prerelease of v0.0.0 that names the source.
KREW_VERSION ?= $(if $(filter v%,$(VERSION)),$(VERSION),v0.0.0-dev.g$(VERSION))

.PHONY: help proto cross build image image-tar image-push image-bins arm64-check release release-version image-ref cluster-up cluster-down test unit unit-root e2e bench lint demo install clean docs krew krew-test

help: ## this list
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## the plugin for this machine, in bin/, with kubectl_complete-tele for kubectl's completion
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/kubectl-tele ./cmd/kubectl-tele
	printf '#!/bin/sh\nexec kubectl-tele __complete "$$@"\n' >$(BIN)/kubectl_complete-tele
	chmod 0755 $(BIN)/kubectl_complete-tele

# The protocol's Go code is generated with buf's own compiler (no protoc on
# this machine or in CI), its version pinned here, and the plugins at the
# versions go.mod and the generated files name.
BUF_VERSION := v1.75.0
GRPC_GEN_VERSION := v1.6.2
proto: ## regenerate pkg/teleproto's Go code from its .proto files (one per boundary) (buf and the protoc-gen-go plugins, from the Go module proxy)
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$$($(GO) list -m -f '{{.Version}}' google.golang.org/protobuf)
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(GRPC_GEN_VERSION)
	cd pkg/teleproto && PATH=$(CURDIR)/$(BIN)/tools:$$PATH buf generate --template buf.gen.yaml .

docs: ## regenerate the command reference in docs/ (a unit test fails when it is stale)
	$(GO) run ./hack/gendocs -dir docs

# Where hack/krew/release.sh writes the archives: bin/krew, or bin/release
# for make release (a target-specific value).
KREW_OUT = $(BIN)/krew
KREW_RELEASE = VERSION=$(VERSION) KREW_VERSION=$(KREW_VERSION) LDFLAGS="$(LDFLAGS)" GO=$(GO) OUT=$(KREW_OUT) hack/krew/release.sh

krew: ## krew archives for 6 platforms in bin/krew/, and krew/tele.yaml with their sha256 (VERSION=v1.2.3 for a release)
	$(KREW_RELEASE)

# krew-test renders its manifest into bin/, so make test leaves krew/tele.yaml
# (the released one) alone; the template and the script are the same.
krew-test: ## the krew archives, installed with krew into a temporary KREW_ROOT; kubectl tele and its completion checked
	MANIFEST=$(BIN)/krew/tele.yaml $(KREW_RELEASE)
	MANIFEST=$(BIN)/krew/tele.yaml hack/krew/test.sh

image-ref: ## print the image reference this source builds
	@echo $(IMAGE)

image-bins:
	for p in $(IMAGE_PLATFORMS); do \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/$${p%/*}_$${p#*/}/kubectl-tele ./cmd/kubectl-tele || exit; \
	done

# -mode 0111: execute-only, so that the agent is non-dumpable from its first
# instruction (see internal/nodump).
IMAGEBUILD = $(GO) run ./$(KIND)/imagebuild -tag $(IMAGE) -platforms $(subst $(space),$(comma),$(IMAGE_PLATFORMS)) \
	-entrypoint /kubectl-tele -mode 0111
IMAGE_FILES = '$(BIN)/linux_{arch}/kubectl-tele=/kubectl-tele'
comma := ,
space := $(subst ,, )

image: build image-bins ## the manager/agent image (linux/amd64+arm64 index) pushed to the local cluster's registry; this machine's platform also in bin/image.tar
	$(IMAGEBUILD) -push -ca $(CLUSTER_CA) -o $(BIN)/image.tar $(IMAGE_FILES)

image-tar: image-bins ## only bin/image.tar (this machine's platform), to load into kind, k3d or minikube
	$(IMAGEBUILD) -o $(BIN)/image.tar $(IMAGE_FILES)

image-push: image-bins ## the image index pushed to REGISTRY=host/path (your docker login; SSL_CERT_FILE for a private CA)
	$(IMAGEBUILD) -push $(IMAGE_FILES)

arm64-check: image-bins ## the image's arm64 binary runs under qemu-user
	out=$$(qemu-aarch64-static $(BIN)/linux_arm64/kubectl-tele version 2>&1) || { echo "$$out"; exit 1; }; \
	echo "arm64 under qemu: $$out"; case "$$out" in *$(VERSION)*) ;; *) echo "arm64 binary does not print $(VERSION)"; exit 1 ;; esac

# A release, into bin/release/: the krew archives of every platform
# krew/tele.yaml.tmpl lists (hack/krew/release.sh, as make krew builds them),
# SHA256SUMS of them, tele.yaml (the krew manifest with their sha256), and
# image.txt (the image index pushed, by digest). The image goes to REGISTRY:
# ghcr.io/kubectl-tele for a vX.Y.Z, unless REGISTRY or IMAGE_REPO say
# otherwise; the binaries deploy that image. make test releases v0.1.0 to the
# local cluster's registry (REGISTRY_CA: the cluster's CA, trusted there);
# .github/workflows/release.yml releases a pushed tag to ghcr.io.
RELEASE_DIR := $(BIN)/release
REGISTRY_CA ?= $(if $(filter $(LOCAL_REGISTRY),$(REGISTRY)),$(CLUSTER_CA))
TEST_RELEASE_VERSION := v0.1.0
release: KREW_OUT = $(RELEASE_DIR)
release: release-version image-bins ## VERSION=vX.Y.Z: archives for every krew platform, SHA256SUMS, the krew manifest and the image pushed to REGISTRY, in bin/release/
	MANIFEST=$(RELEASE_DIR)/tele.yaml $(KREW_RELEASE)
	cd $(RELEASE_DIR) && sha256sum kubectl-tele_*.tar.gz >SHA256SUMS
	$(IMAGEBUILD) -push $(if $(REGISTRY_CA),-ca $(REGISTRY_CA)) $(IMAGE_FILES) >$(RELEASE_DIR)/image.txt
	@echo "== release $(VERSION) in $(RELEASE_DIR)/"; ls -l $(RELEASE_DIR); cat $(RELEASE_DIR)/SHA256SUMS $(RELEASE_DIR)/image.txt

release-version:
	@case "$(VERSION)" in v[0-9]*.[0-9]*.[0-9]*) ;; *) echo "release needs VERSION=vX.Y.Z, not $(VERSION)"; exit 1 ;; esac

cluster-up: ## start the local single-node cluster (root; builds Kubernetes once)
	$(KIND)/cluster-up.sh

cluster-down: ## stop the local cluster and remove all it made
	$(KIND)/cluster-down.sh

lint: ## gofmt, go vet, the packages' import direction (hack/check-layout.sh), and tests off the clock (hack/checksleep)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags root $(ROOT_PKGS)
	hack/check-layout.sh
	$(GO) run ./hack/checksleep pkg internal cmd test

unit: ## unit tests (no cluster, no root)
	$(GO) test ./...

# Tests that need root and the kernel (TUN devices, network namespaces,
# nftables, files of another uid) are built only with the root tag, so that
# go test ./... runs anywhere; make test runs them (CI is root).
unit-root: ## unit tests that need root and the kernel (build tag root; run as root)
	@[ "$$(id -u)" = 0 ] || { echo "unit-root needs root"; exit 1; }
	$(GO) test -tags root $(ROOT_PKGS)

# The packages with such tests: their files' build line names the root tag.
ROOT_PKGS = $(addprefix ./,$(sort $(dir $(shell grep -rlw --include='*_test.go' '^//go:build.*root' pkg internal cmd))))

# Code that cannot run here: every package and its tests compile for these
# (the test binaries are linked, then "run" by /bin/true), and go vet checks
# them; the darwin files are built only this way. -trimpath as the krew
# archives are built, so those reuse these compiled packages.
CROSS_PLATFORMS := darwin/arm64 darwin/amd64 windows/amd64
cross: ## build, vet and compile the tests of every package for macOS and Windows
	for p in $(CROSS_PLATFORMS); do \
	  echo "== $$p"; export GOOS=$${p%/*} GOARCH=$${p#*/}; \
	  $(GO) build -trimpath ./... && $(GO) vet -tags root ./... || exit; \
	  $(GO) test -trimpath -exec /bin/true ./... >/dev/null || exit; \
	done

e2e: ## e2e tests on the local cluster (brings it up if needed)
	$(KIND)/cluster-up.sh
	$(MAKE) image
	$(GO) test -tags e2e -count=1 -timeout 40m -v ./test/e2e/ 2>&1 | tee $(BIN)/e2e.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go' ; \
	status=$${PIPESTATUS[0]}; [ $$status = 0 ] || hack/e2e-failures.sh $(BIN)/e2e.log; exit $$status

# The release runs after the e2e tests, whatever their outcome, because the
# local registry it pushes to is up only with the cluster.
test: lint unit unit-root cross arm64-check krew-test ## everything: lint, unit tests (also as root), krew install, then e2e and make release VERSION=v0.1.0 on a fresh local cluster, torn down after
	@mkdir -p $(BIN)
	$(KIND)/cluster-down.sh
	status=0; $(MAKE) e2e || status=$$?; \
	  $(MAKE) release VERSION=$(TEST_RELEASE_VERSION) REGISTRY=$(LOCAL_REGISTRY) || status=$$?; \
	  $(KIND)/cluster-down.sh; exit $$status

bench: ## benchmarks on the local cluster: one table of ratios, and bench/results.json
	@mkdir -p $(BIN)
	$(KIND)/cluster-up.sh
	$(MAKE) image
	TELE_BENCH=1 $(GO) test -tags e2e -count=1 -run '^TestBench$$' -timeout 20m -v ./test/e2e/ 2>&1 | tee $(BIN)/bench.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go' ; status=$${PIPESTATUS[0]}; \
	  echo; cat bench/results.md 2>/dev/null; echo "(full log: $(BIN)/bench.log)"; exit $$status

demo: ## the local cluster, and kubectl tele shown on it
	$(KIND)/cluster-up.sh
	$(MAKE) image
	$(KIND)/demo.sh

install: build ## install kubectl-tele next to kubectl (PREFIX=/usr/local)
	install -m 0755 $(BIN)/kubectl-tele $(or $(PREFIX),/usr/local)/bin/kubectl-tele
	install -m 0755 $(BIN)/kubectl_complete-tele $(or $(PREFIX),/usr/local)/bin/kubectl_complete-tele

clean:
	rm -rf $(BIN)
