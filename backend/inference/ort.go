//go:build !js

package inference

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvLibrary names the environment variable that points at libonnxruntime.so.1 (an absolute path).
const EnvLibrary = "RDRE_ORT_LIB"

// LibraryName is the file name of the ONNX Runtime shared library that `make ort` provisions.
const LibraryName = "libonnxruntime.so.1"

var (
	initMu   sync.Mutex
	initPath string // set once the environment is up; fixed for the life of the process
)

// Init loads the ONNX Runtime shared library at libPath and creates the process-wide environment. It
// is idempotent for the same path and an error for a different one, because ONNX Runtime keeps one
// environment per process and a library cannot be swapped while sessions may exist. A failed Init can be
// retried (with any path).
func Init(libPath string) error {
	if libPath == "" {
		return errors.New("init onnxruntime: no library path given (flag --ort-lib or " + EnvLibrary + ")")
	}
	abs, err := filepath.Abs(libPath)
	if err != nil {
		return fmt.Errorf("init onnxruntime: library path %s: %w", libPath, err)
	}
	initMu.Lock()
	defer initMu.Unlock()
	if initPath != "" {
		if initPath == abs {
			return nil
		}
		return fmt.Errorf("init onnxruntime: already initialised with %s, cannot switch to %s in the same process", initPath, abs)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("init onnxruntime: library %s: %w (run `make ort` to fetch it)", abs, err)
	}
	if st.IsDir() {
		return fmt.Errorf("init onnxruntime: library path %s is a directory, want the file %s", abs, LibraryName)
	}
	// SetSharedLibraryPath hands the path to dlopen, which does not look in the working directory: the
	// path must be absolute, hence filepath.Abs above.
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("init onnxruntime from %s: %w", abs, err)
	}
	initPath = abs
	slog.Info("onnxruntime ready", "library", abs, "version", ort.GetVersion())
	return nil
}

// Initialized reports whether Init has succeeded in this process, and with which library.
func Initialized() (string, bool) {
	initMu.Lock()
	defer initMu.Unlock()
	return initPath, initPath != ""
}

// Version returns the ONNX Runtime version string of the loaded library ("" before Init).
func Version() string {
	if _, ok := Initialized(); !ok {
		return ""
	}
	return ort.GetVersion()
}

// LibraryPath finds the ONNX Runtime library: the flag value if set, else $RDRE_ORT_LIB, else
// <dir of executable>/../build/ort/libonnxruntime.so.1 (the layout of `make build`: bin/rdre next to
// build/), else <dir of executable>/libonnxruntime.so.1 (a release folder). The result is absolute.
func LibraryPath(flagValue string) (string, error) {
	if flagValue != "" {
		return absExisting(flagValue, "--ort-lib")
	}
	if env := os.Getenv(EnvLibrary); env != "" {
		return absExisting(env, EnvLibrary)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locate onnxruntime library: %w; set --ort-lib or %s", err, EnvLibrary)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	dir := filepath.Dir(exe)
	candidates := []string{
		filepath.Join(dir, "..", "build", "ort", LibraryName),
		filepath.Join(dir, LibraryName),
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return filepath.Abs(filepath.Clean(c))
		}
	}
	return "", fmt.Errorf("onnxruntime library not found: no --ort-lib, no %s, and not at %s or %s (run `make ort`)",
		EnvLibrary, candidates[0], candidates[1])
}

func absExisting(p, from string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("onnxruntime library from %s: %w", from, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("onnxruntime library from %s: %s does not exist (run `make ort`)", from, abs)
		}
		return "", fmt.Errorf("onnxruntime library from %s: %w", from, err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("onnxruntime library from %s: %s is a directory, want the file %s", from, abs, LibraryName)
	}
	return abs, nil
}
