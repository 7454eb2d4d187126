//go:build unix

package training

import (
	"os/exec"
	"syscall"
)

// newProcessGroup makes the trainer the leader of a process group of its own, so that a stop reaches
// every process it started (data loader workers, a compiler) and none of the server's.
func newProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// terminate asks the trainer's group to stop (SIGTERM: the trainer saves its checkpoint first).
func terminate(cmd *exec.Cmd) error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }

// kill ends the trainer's group at once.
func kill(cmd *exec.Cmd) error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
