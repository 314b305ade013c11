# Advisor targets (owned by the advisor engineer). Nothing to install: the
# tests run against fake Ollama / OpenAI-compatible servers (fakellm) and an
# embedded JetStream.
.PHONY: advisor-test advisor-bench advisor-measure
## advisor-test: the advisor's tests (about 40 s with -race on 2 busy cores).
advisor-test:
	cd services/advisor && go test -race -count=1 ./...
## advisor-bench: prompt building, answer parsing and the alert storm.
advisor-bench:
	cd services/advisor && go test -run '^$$' -bench . -benchmem .
## advisor-measure: the measurements of docs/benchmarks/advisor.md (real time: a 30 s model, about 3 minutes).
advisor-measure:
	cd services/advisor && ADVISOR_MEASURE=1 go test -count=1 -timeout 15m -run 'TestMeasure|TestStorm' -v . | grep -E 'measure_test|stage_test|^(---|ok|FAIL)'
