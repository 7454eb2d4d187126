// Package testalloc measures what a piece of code allocates, for the tests and fuzz targets that check
// that a decoder of untrusted bytes allocates no more than its input justifies.
package testalloc

import "runtime"

// Bytes returns the bytes f allocates on the heap (runtime.MemStats.TotalAlloc around it). Other
// goroutines' allocations count too; the fuzz targets run one input at a time per process.
func Bytes(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}
