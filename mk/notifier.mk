# Notifier targets (owned by the notifier engineer).
.PHONY: notifier-test notifier-bench
notifier-test:
	cd services/notifier && go test -race -count=1 ./...
	cd pkg && go test -race -count=1 ./httpx
notifier-bench:
	cd services/notifier && go test -run '^$$' -bench Storm -benchtime 1x .
