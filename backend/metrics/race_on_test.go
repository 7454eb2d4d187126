//go:build race

package metrics

// raceEnabled trims the random brute-force cases: the race detector makes them ~10x slower and they test
// arithmetic, not concurrency (the order/worker cases still run).
const raceEnabled = true
