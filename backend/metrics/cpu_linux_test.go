//go:build linux

package metrics

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) of the process so far: benchmarks report it beside wall time
// because on a shared machine wall time says more about the neighbours than about the code.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
