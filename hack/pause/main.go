// Command pause holds a pod sandbox's namespaces for the local Kubernetes node.
//
// It does nothing until SIGINT or SIGTERM arrives, and then exits 0. As PID 1 of
// the sandbox's PID namespace it inherits every orphaned process there, so it
// waits for each child that exits (on SIGCHLD) and leaves no zombies behind.
//
// Build: CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o pause .
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: pause (takes no arguments; stops on SIGINT or SIGTERM)")
		os.Exit(2)
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: not PID 1, so orphaned processes are not reaped here")
	}
	os.Exit(run(signals))
}

// run handles signals until one asks it to stop, and returns the exit status.
func run(signals <-chan os.Signal) int {
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		return 0
	}
	return 0
}

// reap collects every child that has exited, without blocking on those still
// running, and returns how many it collected. Signals coalesce, so one SIGCHLD
// may stand for several exits.
func reap() int {
	reaped := 0
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil || pid <= 0:
			return reaped
		}
		reaped++
	}
}
