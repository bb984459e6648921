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
IMAGE_REPO ?= kubectl-tele.local/kubectl-tele
IMAGE := $(IMAGE_REPO):$(VERSION)
LDFLAGS := -s -w -X github.com/kubectl-tele/kubectl-tele/pkg/version.Version=$(VERSION) \
	-X github.com/kubectl-tele/kubectl-tele/pkg/version.ImageRepo=$(IMAGE_REPO)
export CGO_ENABLED := 0

# krew wants a semantic version: a tag (v1.2.3) as it is, a local build as a
# prerelease of v0.0.0 that names the source.
KREW_VERSION ?= $(if $(filter v%,$(VERSION)),$(VERSION),v0.0.0-dev.g$(VERSION))

.PHONY: help build image image-ref cluster-up cluster-down test unit e2e bench lint demo install clean docs krew krew-test

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## the plugin for this machine, in bin/, with kubectl_complete-tele for kubectl's completion
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/kubectl-tele ./cmd/kubectl-tele
	printf '#!/bin/sh\nexec kubectl-tele __complete "$$@"\n' >$(BIN)/kubectl_complete-tele
	chmod 0755 $(BIN)/kubectl_complete-tele

docs: ## regenerate the command reference in docs/ (a unit test fails when it is stale)
	$(GO) run ./hack/gendocs -dir docs

KREW_RELEASE = VERSION=$(VERSION) KREW_VERSION=$(KREW_VERSION) LDFLAGS="$(LDFLAGS)" GO=$(GO) OUT=$(BIN)/krew hack/krew/release.sh

krew: ## krew archives for 6 platforms in bin/krew/, and krew/tele.yaml with their sha256 (VERSION=v1.2.3 for a release)
	$(KREW_RELEASE)

# krew-test renders its manifest into bin/, so make test leaves krew/tele.yaml
# (the released one) alone; the template and the script are the same.
krew-test: ## the krew archives, installed with krew into a temporary KREW_ROOT; kubectl tele and its completion checked
	MANIFEST=$(BIN)/krew/tele.yaml $(KREW_RELEASE)
	MANIFEST=$(BIN)/krew/tele.yaml hack/krew/test.sh

image-ref: ## print the image reference this source builds
	@echo $(IMAGE)

image: build ## the manager/agent image, imported into the local cluster
	$(GO) run ./$(KIND)/imagebuild -tag $(IMAGE) -o $(BIN)/image.tar -entrypoint /kubectl-tele $(BIN)/kubectl-tele=/kubectl-tele
	$(KIND)/images.sh import=$(BIN)/image.tar

cluster-up: ## start the local single-node cluster (root; builds Kubernetes once)
	$(KIND)/cluster-up.sh

cluster-down: ## stop the local cluster and remove all it made
	$(KIND)/cluster-down.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit: ## unit tests (no cluster, no root)
	$(GO) test ./...

e2e: ## e2e tests on the local cluster (brings it up if needed)
	$(KIND)/cluster-up.sh
	$(MAKE) image
	$(GO) test -tags e2e -count=1 -timeout 40m -v ./test/e2e/ 2>&1 | tee $(BIN)/e2e.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go' ; \
	status=$${PIPESTATUS[0]}; [ $$status = 0 ] || hack/e2e-failures.sh $(BIN)/e2e.log; exit $$status

test: lint unit krew-test ## everything: lint, unit tests, krew install, then e2e on a fresh local cluster, torn down after
	@mkdir -p $(BIN)
	$(KIND)/cluster-down.sh
	status=0; $(MAKE) e2e || status=$$?; $(KIND)/cluster-down.sh; exit $$status

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
