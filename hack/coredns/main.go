// Command coredns is CoreDNS with only the plugins the local node cluster's
// DNS needs: it answers <service>.<namespace>.svc.cluster.local (and the
// reverse zones of the cluster's ranges) from the API server, and nothing
// else. There is no forward plugin, so no query can leave the machine: a
// Corefile that names an upstream fails to load.
//
// tokenwarden.devcluster.ensure_coredns builds it; corefile renders its
// configuration.
package main

import (
	"log"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// Each import registers one directive; SetDirectives below orders them.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives is the execution order of the plugins above, as in CoreDNS's
// plugin.cfg: a plugin sees a query before every plugin after it.
var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		log.Fatal(err)
	}
	coremain.Run()
}
