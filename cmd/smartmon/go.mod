module github.com/smart-k8s-monitor/smart-k8s-monitor/cmd/smartmon

go 1.26.0
