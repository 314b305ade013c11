// Command etcd is the etcd server, built from the Go module proxy for the
// enricher's envtest tests (envtest needs an etcd binary next to
// kube-apiserver, and no prebuilt one can be downloaded here).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
