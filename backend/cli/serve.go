//go:build !js

package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/report"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/backend/webui"
)

func init() {
	Register(Command{Name: "serve", Summary: "start the web UI on a dataset", Run: runServe})
}

// listFlag collects a repeatable, comma-separable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var data, models listFlag
	fs.Var(&data, "data", "dataset root, any layout of 'rdre eval -h' (MVTec AD, AD 2, 3D-AD, LOCO, VisA, BTAD, MPDD, Magnetic-Tile, plain); repeatable")
	layout := fs.String("layout", "", "force the layout of every --data (default: detect each); one of "+strings.Join(dataset.LayoutNames(), ", "))
	fs.Var(&models, "model", "ONNX model file to offer for evaluation (also served to others over the Open Inference Protocol at /v2/models/NAME, NAME its base name without .onnx); repeatable")
	remote := addRemoteFlags(fs) // --model-url: models served elsewhere (remote.go)
	trainFl := addTrainFlags(fs) // training from the browser (train_attach.go)
	var allowHosts listFlag
	fs.Var(&allowHosts, "allow-host", "another name the server may be reached by (NAME or NAME:PORT), e.g. a machine name behind a proxy; repeatable. Requests naming any other Host are refused (DNS rebinding)")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address; a non-loopback address requires a token")
	workspace := fs.String("workspace", "", "workspace file (bbolt); default "+store.DefaultPath())
	token := fs.String("token", "", "access token; generated and printed when listening beyond loopback")
	device := fs.String("device", "auto", "inference device: auto, cpu or cuda")
	threads := fs.Int("threads", 0, "inference threads per session (0 = ONNX Runtime's default)")
	ortLib := fs.String("ort-lib", "", "path of libonnxruntime.so (default $RDRE_ORT_LIB, then next to the binary)")
	decodeBudget := fs.String("decode-budget", "", "memory that all image decodes together may hold, e.g. 512MiB or 2GiB (default $"+imageio.DecodeBudgetEnv+", then a quarter of RAM within 256 MiB..2 GiB)")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if err := setDecodeBudget(*decodeBudget); err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 2
	}
	if len(data) == 0 {
		fmt.Fprintln(stderr, "serve: --data is required (try: make run, which uses the bundled demo dataset)")
		return 2
	}
	if *workspace == "" {
		*workspace = store.DefaultPath()
	}
	if err := os.MkdirAll(dirOf(*workspace), 0o755); err != nil {
		fmt.Fprintf(stderr, "serve: workspace folder: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// Packages that log through the default logger (inference) then write the same format to the same place.
	slog.SetDefault(log)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "serve: listen on %s: %v\n", *addr, err)
		return 1
	}
	if !isLoopback(ln.Addr()) && *token == "" {
		*token = randomToken()
	}
	srv, err := server.New(server.Config{Data: data, Layout: *layout, Workspace: *workspace, UI: webui.Handler(webui.Options{}), Token: *token, Logger: log, AllowedHosts: server.HostsFor(ln.Addr(), allowHosts)})
	if err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 1
	}
	defer srv.Close()
	srv.Handle("GET /api/report", report.Handler(srv.Store()))
	trainer := newTrainer(srv, trainFl, jobOptions{Device: *device, Threads: *threads, Log: log})
	runner, err := attachJobs(srv, jobOptions{Models: models, Remote: remote, Device: *device, Threads: *threads, ORTLib: *ortLib, Log: log, BeforeResume: trainer.AttachJobs})
	if err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 1
	}
	if runner != nil {
		defer runner.Close()
	}
	if created, err := startTraining(srv, trainer, runner, jobOptions{Device: *device, Threads: *threads, ORTLib: *ortLib, Log: log}); err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 1
	} else if created != nil {
		runner = created
		defer runner.Close()
	}
	defer trainer.Close() // before the job runner closes: a finishing run may still register its model

	serveOIP(srv, runner, log) // the Open Inference Protocol routes (remote.go)

	url := fmt.Sprintf("http://%s/", ln.Addr())
	if *token != "" {
		url += "?token=" + *token
	}
	fmt.Fprintf(stdout, "RD-RE Studio listening on %s\n", url)
	log.Info("workspace", "path", *workspace, "decode_budget_mib", imageio.DecodeBudget().Size()>>20)

	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "serve: %v\n", err)
			return 1
		}
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}
	return 0
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, os.PathSeparator); i > 0 {
		return p[:i]
	}
	return "."
}

// setDecodeBudget applies --decode-budget; "" keeps the default.
func setDecodeBudget(v string) error {
	if v == "" {
		return nil
	}
	n, err := imageio.ParseBytes(v)
	if err != nil || n < 1<<20 {
		return fmt.Errorf("--decode-budget %q: want a size of at least 1MiB, such as 512MiB or 2GiB", v)
	}
	imageio.SetDecodeBudget(n)
	return nil
}
