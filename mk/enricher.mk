# Enricher targets. Included by the top-level Makefile.
#
# envtest needs a real kube-apiserver and etcd. No prebuilt binaries can be
# downloaded here, so both are built from the Go module proxy by the small
# tools modules under tools/envtest (not part of go.work, hence GOWORK=off).
# A cold build takes about 15 minutes on 2 cores and ~3 GB of RAM; the
# binaries land in bin/envtest (git-ignored) and are rebuilt only when the
# pinned versions (the tools' go.mod) change.
#
# Tests find them through KUBEBUILDER_ASSETS=$(ENRICHER_ENVTEST_ASSETS).

ENRICHER_KUBE_VERSION    := v1.37.2
ENRICHER_ENVTEST_ASSETS  := $(CURDIR)/bin/envtest
ENRICHER_KUBE_LDFLAGS    := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(ENRICHER_KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitTreeState=clean

.PHONY: enricher-envtest-assets enricher-test enricher-bench enricher-envtest-clean

## enricher-envtest-assets: build kube-apiserver and etcd for envtest into bin/envtest (once).
enricher-envtest-assets: $(ENRICHER_ENVTEST_ASSETS)/kube-apiserver $(ENRICHER_ENVTEST_ASSETS)/etcd

$(ENRICHER_ENVTEST_ASSETS)/kube-apiserver: tools/envtest/kube-apiserver/go.mod tools/envtest/kube-apiserver/go.sum
	@mkdir -p $(ENRICHER_ENVTEST_ASSETS)
	@echo "building kube-apiserver $(ENRICHER_KUBE_VERSION) for envtest (about 13 minutes cold)..."
	cd tools/envtest/kube-apiserver && GOWORK=off CGO_ENABLED=0 go build -trimpath \
		-ldflags '$(ENRICHER_KUBE_LDFLAGS)' -o $@.tmp k8s.io/kubernetes/cmd/kube-apiserver
	@mv $@.tmp $@

$(ENRICHER_ENVTEST_ASSETS)/etcd: tools/envtest/etcd/go.mod tools/envtest/etcd/go.sum tools/envtest/etcd/main.go
	@mkdir -p $(ENRICHER_ENVTEST_ASSETS)
	@echo "building etcd for envtest (about 2 minutes cold)..."
	cd tools/envtest/etcd && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o $@.tmp .
	@mv $@.tmp $@

## enricher-test: the enricher's and pkg/redact's tests, envtest included.
enricher-test: enricher-envtest-assets
	cd pkg && go test -race ./redact/...
	cd services/enricher && KUBEBUILDER_ASSETS=$(ENRICHER_ENVTEST_ASSETS) go test -race ./...

## enricher-bench: the enricher's benchmarks (fake clientset and envtest).
enricher-bench: enricher-envtest-assets
	cd services/enricher && KUBEBUILDER_ASSETS=$(ENRICHER_ENVTEST_ASSETS) go test -run '^$$' -bench . -benchmem ./...

enricher-envtest-clean:
	rm -rf $(ENRICHER_ENVTEST_ASSETS)
