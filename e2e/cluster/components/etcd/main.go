// Command etcd is etcd's own server entry point, pinned through this module's go.mod so the
// harness builds the exact release Kubernetes v1.34.4 is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
