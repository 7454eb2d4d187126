//go:build !linux && !js

package imageio

// systemMemory is unknown off Linux: the decode budget falls back to its fixed default.
func systemMemory() int64 { return 0 }
