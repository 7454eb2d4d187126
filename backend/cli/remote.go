//go:build !js

package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rdre-studio/studio/backend/cli/version"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/oip"
	"github.com/rdre-studio/studio/backend/server"
)

// EnvModelToken names the environment variable with the bearer token sent to --model-url endpoints that
// have no ?token= of their own.
const EnvModelToken = "RDRE_MODEL_TOKEN"

// remoteFlags are the flags of a model served over the Open Inference Protocol, shared by serve, infer
// and bench.
type remoteFlags struct {
	urls     listFlag
	meta     listFlag
	inflight int
	timeout  time.Duration
	giveUp   time.Duration
}

func addRemoteFlags(fs *flag.FlagSet) *remoteFlags {
	rf := &remoteFlags{}
	fs.Var(&rf.urls, "model-url", "a model served over the Open Inference Protocol (KServe v2: rdre serve, Triton, KServe), its `URL` being http://HOST:PORT/v2/models/NAME; repeatable, and URLs of the same NAME are endpoints of one model, balanced round robin. A ?token=T in the URL (else $"+EnvModelToken+") is sent as a bearer token")
	fs.Var(&rf.meta, "model-meta", "--model-url: a metadata sidecar `FILE` (MODEL.onnx.rdre.json, as rdre export-model writes it) for endpoints whose metadata lacks the rdre.* keys; repeatable (matched by model name)")
	fs.IntVar(&rf.inflight, "remote-inflight", 2, "--model-url: requests in flight per endpoint")
	fs.DurationVar(&rf.timeout, "remote-timeout", 2*time.Minute, "--model-url: timeout of one request")
	fs.DurationVar(&rf.giveUp, "remote-give-up", 5*time.Minute, "--model-url: how long a batch waits for an endpoint to answer (failed endpoints are retried) before the run fails")
	return rf
}

// options are the client options; batch is the images of one request (the --batch of a local run).
func (rf *remoteFlags) options(batch int, log *slog.Logger) oip.Options {
	return oip.Options{Batch: batch, MaxInFlight: rf.inflight, Timeout: rf.timeout, GiveUp: rf.giveUp, Sidecars: rf.meta, Token: os.Getenv(EnvModelToken), Log: log}
}

// addRemoteModels opens the --model-url models and registers them with r.
func addRemoteModels(r *jobs.Runner, rf *remoteFlags, batch int, log *slog.Logger) error {
	if rf == nil || len(rf.urls) == 0 {
		return nil
	}
	ms, err := oip.OpenAll(rf.urls, rf.options(batch, log))
	if err != nil {
		return err
	}
	for i, m := range ms {
		if _, err := r.AddPredictor(m); err != nil {
			for _, o := range ms[i:] {
				o.Close()
			}
			return fmt.Errorf("model %s: %w", m.Info().Path, err)
		}
	}
	return nil
}

// serveOIP exposes the runner's local models over the Open Inference Protocol, through srv's routes (and
// so behind its token and Host checks).
func serveOIP(srv *server.Server, r *jobs.Runner, log *slog.Logger) {
	var models []oip.Runner
	if r != nil {
		for _, m := range r.LocalModels() {
			models = append(models, m)
		}
	}
	oip.NewServer(oip.ServerOptions{Version: version.Version, Log: log}, models...).Register(srv.Handle)
}
