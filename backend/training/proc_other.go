//go:build !unix && !js

package training

import (
	"os"
	"os/exec"
)

func newProcessGroup(cmd *exec.Cmd) {}

// terminate asks the trainer to stop; without process groups and SIGTERM this is an interrupt.
func terminate(cmd *exec.Cmd) error { return cmd.Process.Signal(os.Interrupt) }

func kill(cmd *exec.Cmd) error { return cmd.Process.Kill() }
