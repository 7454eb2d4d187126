//go:build !linux

package metrics

import "time"

// processCPU is not measured off Linux; benchmarks then report 0 CPU time.
func processCPU() time.Duration { return 0 }
