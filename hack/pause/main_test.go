package main

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestStopSignalsEndTheLoopWithStatusZero(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM} {
		signals := make(chan os.Signal, 2)
		signals <- syscall.SIGCHLD
		signals <- sig
		if status := run(signals); status != 0 {
			t.Fatalf("after %v: exit status %d, want 0", sig, status)
		}
	}
}

func TestExitedChildrenAreReaped(t *testing.T) {
	var pids []int
	for i := 0; i < 3; i++ {
		cmd := exec.Command("/bin/true")
		if err := cmd.Start(); err != nil {
			t.Skipf("cannot start a child: %v", err)
		}
		pids = append(pids, cmd.Process.Pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	reaped := 0
	for reaped < len(pids) && time.Now().Before(deadline) {
		reaped += reap()
		time.Sleep(10 * time.Millisecond)
	}
	if reaped != len(pids) {
		t.Fatalf("reaped %d of %d exited children", reaped, len(pids))
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("child %d is still in /proc (a zombie)", pid)
		}
	}
	if reap() != 0 {
		t.Error("reap found children after all were collected")
	}
}
