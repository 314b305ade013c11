# Deploy targets: the pinned helm and the tests of deploy/ (compose file,
# Helm chart, NATS chart values) and of the container healthcheck.
#
# helm is built from the Go module proxy (no release downloads here): about
# 5 minutes cold, then cached in ./bin. The deploy tests fail under CI=true
# when it is missing, and skip with a message otherwise.

DEPLOY_HELM_VERSION := v3.22.0
DEPLOY_HELM         := $(CURDIR)/bin/helm

.PHONY: deploy-tools deploy-test deploy-lint

## deploy-tools: install the pinned helm into ./bin.
deploy-tools: $(DEPLOY_HELM)

$(DEPLOY_HELM):
	@mkdir -p $(CURDIR)/bin
	@echo "installing helm $(DEPLOY_HELM_VERSION) into bin/ (about 5 minutes cold)..."
	GOBIN=$(CURDIR)/bin go install helm.sh/helm/v3/cmd/helm@$(DEPLOY_HELM_VERSION)

## deploy-test: compose and chart tests (helm lint/template, strict decoding, RBAC, schema) and am-check.
deploy-test: deploy-tools
	cd deploy/test && SMARTMON_HELM=$(DEPLOY_HELM) go test -race ./...
	cd deploy/healthcheck && go test -race ./...
	cd cmd/smartmon && go test -race ./amcheck/...

## deploy-lint: helm lint of the chart with default values.
deploy-lint: deploy-tools
	$(DEPLOY_HELM) lint --strict deploy/helm/smart-k8s-monitor
