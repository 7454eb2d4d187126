//go:build race

package imageio

// raceEnabled: the race detector changes what code allocates (sync.Pool drops items, some appends are not
// fused), so tests that compare allocations with estimates, and the slowest decodes, skip under it.
const raceEnabled = true
