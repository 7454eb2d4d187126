//go:build !js

package training

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rdre-studio/studio/shared/protocol"
)

// stopExit is the trainer's exit status after it honoured SIGTERM and saved its checkpoint.
const stopExit = 143

// event is one line of the trainer's --progress-json stream (models/progress.py documents it).
type event struct {
	Event      string             `json:"event"`
	Stage      string             `json:"stage"`
	Step       int                `json:"step"`
	Total      int                `json:"total"`
	Loss       float64            `json:"loss"`
	Losses     map[string]float64 `json:"losses"`
	SecPerStep float64            `json:"sec_per_step"`
	ETA        float64            `json:"eta_s"`
	Elapsed    map[string]float64 `json:"elapsed_s"`
	Preview    *struct {
		Image      string `json:"image"`
		Mask       string `json:"mask"`
		Prediction string `json:"prediction"`
	} `json:"preview"`
	Steps       map[string]int       `json:"steps"`
	Images      int                  `json:"images"`
	Device      string               `json:"device"`
	Threads     int                  `json:"threads"`
	Torch       string               `json:"torch"`
	CUDA        bool                 `json:"cuda"`
	GPU         string               `json:"gpu"`
	Fingerprint string               `json:"fingerprint"`
	Thresholds  map[string]float64   `json:"thresholds"`
	Message     string               `json:"message"`
	Floor       *protocol.TrainFloor `json:"record"` // the "floor" event
}

// child is one supervised Python process.
type child struct {
	python, repo string
	args         []string
	grace        time.Duration
	// out receives every line the process writes (stdout and stderr), for the run's folder.
	out io.Writer
	// onEvent gets each progress line, onLog each other line, in order, on one goroutine.
	onEvent func(event)
	onLog   func(string)
}

// errStopped is returned when the process ended because ctx was cancelled.
var errStopped = errors.New("stopped")

// run starts the process and waits for it. When ctx ends it sends SIGTERM to the process group and,
// after grace, SIGKILL. It returns nil on exit status 0, errStopped (wrapped) when stopped, else an
// error with the end of the output.
func (c *child) run(ctx context.Context) error {
	cmd := exec.Command(c.python, c.args...)
	cmd.Dir = c.repo
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	newProcessGroup(cmd)
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start %s: %w", c.python, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("start %s %s: %w", c.python, strings.Join(c.args, " "), err)
	}
	pw.Close() // the child holds its own copy; EOF comes when it (and its children) exit

	tail := newTail(20)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			if c.out != nil {
				io.WriteString(c.out, line+"\n")
			}
			if strings.HasPrefix(line, `{"event"`) {
				var ev event
				if err := json.Unmarshal([]byte(line), &ev); err == nil {
					if c.onEvent != nil {
						c.onEvent(ev)
					}
					continue
				}
			}
			tail.add(line)
			if c.onLog != nil {
				c.onLog(line)
			}
		}
		io.Copy(io.Discard, pr)
	}()

	exited := make(chan struct{})
	var stopped atomic.Bool
	go func() {
		select {
		case <-ctx.Done():
		case <-exited:
			return
		}
		stopped.Store(true)
		terminate(cmd)
		select {
		case <-exited:
		case <-time.After(c.grace):
			kill(cmd)
		}
	}()
	werr := cmd.Wait()
	close(exited)
	<-readDone
	pr.Close()
	if werr == nil {
		return nil
	}
	var ee *exec.ExitError
	if stopped.Load() || ctx.Err() != nil {
		if errors.As(werr, &ee) && ee.ExitCode() == stopExit {
			return fmt.Errorf("%w: checkpoint saved", errStopped)
		}
		return fmt.Errorf("%w: %v (the trainer did not stop within %s and was killed; the last checkpoint stays)", errStopped, werr, c.grace)
	}
	if errors.As(werr, &ee) && ee.ExitCode() == stopExit {
		return fmt.Errorf("the trainer was stopped by a signal from outside the tool after saving its checkpoint; resume continues from it")
	}
	return fmt.Errorf("%s exited: %v; last output: %s", c.python, werr, tail.String())
}

// tail keeps the last n lines.
type tail struct {
	n     int
	lines []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(s string) {
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	t.lines = append(t.lines, s)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

// String gives the lines worth showing: a Python traceback's last line and ERROR lines first.
func (t *tail) String() string {
	var errs []string
	for _, l := range t.lines {
		if strings.Contains(l, " ERROR ") || strings.HasSuffix(strings.SplitN(l, ":", 2)[0], "Error") {
			errs = append(errs, l)
		}
	}
	if len(errs) > 0 {
		return strings.Join(errs, " | ")
	}
	var b bytes.Buffer
	for i, l := range t.lines[max(0, len(t.lines)-3):] {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(l)
	}
	return b.String()
}
