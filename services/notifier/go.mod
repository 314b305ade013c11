module github.com/smart-k8s-monitor/smart-k8s-monitor/services/notifier

go 1.26.0
