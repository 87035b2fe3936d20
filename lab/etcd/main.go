// Command etcd is the lab's etcd server: etcd's own entry point, built from its Go module at the
// version pinned in go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
