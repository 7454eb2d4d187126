//go:build !js

package training

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// probeScript reports the interpreter and the modules models.train needs, as one JSON line.
const probeScript = `
import importlib, json, sys
out = {"python": sys.version.split()[0], "executable": sys.executable, "missing": [], "versions": {}}
for m in ("torch", "torchvision", "numpy", "PIL", "flatbuffers", "onnx"):
    try:
        mod = importlib.import_module(m)
        out["versions"][m] = str(getattr(mod, "__version__", ""))
    except Exception as err:
        out["missing"].append(m)
        out.setdefault("errors", {})[m] = str(err)[:200]
if "torch" not in out["missing"]:
    import torch
    out["cuda"] = bool(torch.cuda.is_available())
    out["gpu"] = torch.cuda.get_device_name(0) if out["cuda"] else ""
print(json.dumps(out))
`

// debPackage and pipPackage name what provides each module.
var (
	debPackage = map[string]string{"torch": "python3-torch", "torchvision": "python3-torchvision", "numpy": "python3-numpy",
		"PIL": "python3-pil", "flatbuffers": "python3-flatbuffers", "onnx": "python3-onnx"}
	pipPackage = map[string]string{"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "PIL": "pillow",
		"flatbuffers": "flatbuffers", "onnx": "onnx"}
)

// probeResult is what the server learned about its Python.
type probeResult struct {
	Python  string   // the interpreter's path
	Repo    string   // the folder holding models/
	Version string   // Python's version
	Torch   string   // PyTorch's version
	CUDA    bool     // PyTorch sees a GPU
	GPU     string   // its name
	Missing []string // modules not importable
	Problem string   // what is wrong and how to fix it; "" when training can run
}

type envProbe struct {
	python, repo string
	once         sync.Once
	done         chan struct{}
	res          probeResult
}

func newEnvProbe(python, repo string) *envProbe {
	return &envProbe{python: python, repo: repo, done: make(chan struct{})}
}

// result starts the probe on first use and waits for it up to ctx; checking is true when it is not done.
func (p *envProbe) result(ctx context.Context) (probeResult, bool) {
	p.once.Do(func() {
		go func() {
			p.res = probe(p.python, p.repo)
			close(p.done)
		}()
	})
	select {
	case <-p.done:
		return p.res, false
	case <-ctx.Done():
		return probeResult{}, true
	}
}

// FindPython returns the interpreter to use: flag, else DefaultPython, else python3 on PATH.
func FindPython(flag string) (string, error) {
	if flag != "" {
		if p, err := exec.LookPath(flag); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("python %s: not found or not executable (--python)", flag)
	}
	if st, err := os.Stat(DefaultPython); err == nil && !st.IsDir() {
		return DefaultPython, nil
	}
	if p, err := exec.LookPath("python3"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no Python found: neither %s nor python3 on PATH; install Python 3 with PyTorch (apt-get install python3-torch python3-torchvision) or pass --python PATH", DefaultPython)
}

// FindRepo returns the folder holding the trainer package (models/train.py): flag, else the working
// directory or one of its parents, else the folder above the executable's (bin/rdre in a checkout).
func FindRepo(flag string) (string, error) {
	has := func(d string) bool {
		st, err := os.Stat(filepath.Join(d, "models", "train.py"))
		return err == nil && !st.IsDir()
	}
	if flag != "" {
		abs, err := filepath.Abs(flag)
		if err != nil || !has(abs) {
			return "", fmt.Errorf("trainer folder %s: no models/train.py in it (--models wants the checkout holding models/)", flag)
		}
		return abs, nil
	}
	var tried []string
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if has(d) {
				return d, nil
			}
			tried = append(tried, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		d := filepath.Dir(filepath.Dir(exe))
		if has(d) {
			return d, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("the trainer (models/train.py) was not found in %s: run rdre from the project's checkout or pass --models DIR", strings.Join(tried, ", "))
}

func probe(pythonFlag, repoFlag string) probeResult {
	var res probeResult
	repo, err := FindRepo(repoFlag)
	if err != nil {
		res.Problem = err.Error()
		return res
	}
	res.Repo = repo
	py, err := FindPython(pythonFlag)
	if err != nil {
		res.Problem = err.Error()
		return res
	}
	res.Python = py
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", probeScript)
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		res.Problem = fmt.Sprintf("%s does not run: %v %s", py, err, strings.TrimSpace(lastLines(stderr.String(), 3)))
		return res
	}
	var rep struct {
		Python   string            `json:"python"`
		Missing  []string          `json:"missing"`
		Versions map[string]string `json:"versions"`
		CUDA     bool              `json:"cuda"`
		GPU      string            `json:"gpu"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(lastLine(out)), &rep); err != nil {
		res.Problem = fmt.Sprintf("%s: unreadable probe output %q: %v", py, truncate(string(out), 200), err)
		return res
	}
	res.Version, res.Torch, res.CUDA, res.GPU, res.Missing = rep.Python, rep.Versions["torch"], rep.CUDA, rep.GPU, rep.Missing
	if len(rep.Missing) > 0 {
		res.Problem = missingProblem(py, rep.Missing)
	}
	return res
}

// missingProblem says what is missing and how to install it.
func missingProblem(py string, missing []string) string {
	var deb, pip []string
	for _, m := range missing {
		deb = append(deb, debPackage[m])
		pip = append(pip, pipPackage[m])
	}
	what := "modules " + strings.Join(missing, ", ")
	if contains(missing, "torch") {
		what = "PyTorch (" + what + ")"
	}
	return fmt.Sprintf("training needs %s, which %s cannot import. Install them: `apt-get install %s` (Debian, Ubuntu), "+
		"or `%s -m pip install %s`; or start the server with --python PATH of an interpreter that has them.",
		what, py, strings.Join(deb, " "), py, strings.Join(pip, " "))
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\r\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
