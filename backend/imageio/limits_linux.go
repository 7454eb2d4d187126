//go:build linux

package imageio

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// systemMemory is the machine's memory, or the memory limit of this process's cgroup when that is
// lower; 0 when unknown.
func systemMemory() int64 {
	var m int64
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m = int64(si.Totalram) * int64(si.Unit)
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (m == 0 || n < m) {
			m = n
		}
	}
	return m
}
