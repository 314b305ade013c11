# Operations proof (owned by the ops engineer): the long crash storm, the
# pipeline benchmarks of docs/benchmarks/ops.md and short fuzzing sessions.
# The fuzz seed corpora, the cluster test, the 300-notification crash storm
# and the outage test already run in `make test`; nothing to install.

OPS_FUZZTIME ?= 30s

.PHONY: ops-storm-long ops-bench ops-fuzz

## ops-storm-long: the crash storm at full size (1,000 notifications, kill -9 at a random point).
ops-storm-long:
	SMARTMON_STORM_SIZE=1000 $(GO) test -race -count=1 -timeout 20m -run 'TestCrashStormLosesNothing' -v ./cmd/smartmon

## ops-bench: the pipeline numbers of docs/benchmarks/ops.md (about 5 minutes).
ops-bench:
	cd cmd/smartmon && $(GO) test -run '^$$' -bench 'WebhookAccept|WebhookLatency|PipelineOverhead' -benchtime=2s -benchmem ./app
	cd cmd/smartmon && $(GO) test -run '^$$' -bench 'StormScenario|Burst200' -benchmem ./app
	cd cmd/smartmon && $(GO) test -run '^$$' -bench 'RSS' -timeout 20m .

## ops-fuzz: fuzz every target for OPS_FUZZTIME each (the seeds run in `make test`).
ops-fuzz:
	cd services/ingest && $(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(OPS_FUZZTIME) .
	cd services/ingest && $(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(OPS_FUZZTIME) .
	cd pkg && $(GO) test -run '^$$' -fuzz '^FuzzRedact$$' -fuzztime $(OPS_FUZZTIME) ./redact
	cd pkg && $(GO) test -run '^$$' -fuzz '^FuzzRedactArbitrary$$' -fuzztime $(OPS_FUZZTIME) ./redact
	cd services/notifier && $(GO) test -run '^$$' -fuzz '^FuzzFormatters$$' -fuzztime $(OPS_FUZZTIME) .
