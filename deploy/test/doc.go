// Package deploytest holds the tests of the deployment files: the compose
// file, the Helm chart and the NATS chart values. It has no code of its own;
// the tests run the pinned helm binary (make deploy-tools) named by
// SMARTMON_HELM.
package deploytest
