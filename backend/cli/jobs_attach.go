//go:build !js

package cli

import (
	"fmt"
	"log/slog"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/server"
)

// jobOptions configures the evaluation job system of serve.
type jobOptions struct {
	Models  []string
	Remote  *remoteFlags // --model-url models (remote.go)
	Device  string
	Threads int
	ORTLib  string
	Log     *slog.Logger
	// BeforeResume runs after the models are added and before interrupted jobs resume (trained models
	// join the runner there: train_attach.go).
	BeforeResume func(*jobs.Runner) error
}

// attachJobs plugs evaluation jobs into srv. Without models the UI still browses and labels; with
// models, ONNX Runtime must load, and a model file that does not fit the contract stops the start with
// the reason, rather than failing later in the browser.
func attachJobs(srv *server.Server, opt jobOptions) (*jobs.Runner, error) {
	if len(opt.Models) == 0 && (opt.Remote == nil || len(opt.Remote.urls) == 0) {
		return nil, nil
	}
	if len(opt.Models) > 0 { // remote models alone need no ONNX Runtime here
		lib, err := inference.LibraryPath(opt.ORTLib)
		if err != nil {
			return nil, err
		}
		if err := inference.Init(lib); err != nil {
			return nil, err
		}
	}
	r := jobs.New(srv, jobs.Options{Device: opt.Device, Threads: opt.Threads, Log: opt.Log})
	for _, m := range opt.Models {
		if _, err := r.AddModel(m); err != nil {
			r.Close()
			return nil, fmt.Errorf("model %s: %w", m, err)
		}
	}
	if err := addRemoteModels(r, opt.Remote, 0, opt.Log); err != nil {
		r.Close()
		return nil, err
	}
	if opt.BeforeResume != nil {
		if err := opt.BeforeResume(r); err != nil {
			r.Close()
			return nil, err
		}
	}
	if err := r.Resume(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}
