//go:build !js

package cli

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/jobs"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/backend/training"
)

// trainFlags are serve's flags for training from the browser (package training).
type trainFlags struct {
	python, models, runs, resnet18 *string
	textures                       listFlag
}

func addTrainFlags(fs *flag.FlagSet) *trainFlags {
	tf := &trainFlags{
		python:   fs.String("python", "", "Python with PyTorch for training (default "+training.DefaultPython+", then python3 on PATH)"),
		models:   fs.String("models", "", "the checkout holding the trainer package models/ (default: found from the working directory or the binary)"),
		runs:     fs.String("runs", "", "folder of the training runs (default: runs/ beside the workspace file)"),
		resnet18: fs.String("resnet18-weights", "", "torchvision ResNet18 ImageNet state_dict file: offers the resnet18 teacher for training"),
	}
	fs.Var(&tf.textures, "textures", "folder of texture images (e.g. DTD) offered as anomaly source for training; repeatable")
	return tf
}

// newTrainer plugs training into srv; call it before srv.Handler, and hand its AttachJobs to attachJobs
// as BeforeResume.
func newTrainer(srv *server.Server, tf *trainFlags, opt jobOptions) *training.Runner {
	return training.New(srv, training.Options{
		Python: *tf.python, Repo: *tf.models, RunsDir: *tf.runs, ResNet18Weights: *tf.resnet18, Textures: tf.textures,
		InferDevice: inferDevice(opt.Device), InferThreads: opt.Threads, Log: opt.Log,
	})
}

// inferDevice is the calibration's device: the server's, except that "auto" stays on the CPU (a few
// images; no CUDA session is worth its start there).
func inferDevice(d string) string {
	if d == "cuda" {
		return d
	}
	return "cpu"
}

// startTraining makes sure trained models can be registered and evaluated (ONNX Runtime loaded, a job
// runner even when serve got no --model: created here and returned, for the caller to close) and resumes
// a run the last server left. Without ONNX Runtime training still runs; its models are exported only.
func startTraining(srv *server.Server, tr *training.Runner, runner *jobs.Runner, opt jobOptions) (*jobs.Runner, error) {
	ortOK := optionalORT(opt.ORTLib, opt.Log)
	var created *jobs.Runner
	if runner == nil && ortOK {
		created = jobs.New(srv, jobs.Options{Device: opt.Device, Threads: opt.Threads, Log: opt.Log})
		if err := tr.AttachJobs(created); err != nil {
			created.Close()
			return nil, err
		}
		// Without a model nothing can resume: interrupted jobs then stay resumable for a server that has
		// theirs (as when serve has no job system at all).
		if len(created.Models()) > 0 {
			if err := created.Resume(); err != nil {
				created.Close()
				return nil, err
			}
		}
	}
	if err := tr.ResumeAll(); err != nil {
		if created != nil {
			created.Close()
		}
		return nil, fmt.Errorf("resume training: %w", err)
	}
	return created, nil
}

// optionalORT loads ONNX Runtime when it can, and says why not when it cannot.
func optionalORT(flagValue string, log *slog.Logger) bool {
	if _, ok := inference.Initialized(); ok {
		return true
	}
	lib, err := inference.LibraryPath(flagValue)
	if err == nil {
		err = inference.Init(lib)
	}
	if err != nil {
		if log != nil {
			log.Warn("no inference runtime: trained models are exported but not registered or evaluated", "err", err)
		}
		return false
	}
	return true
}
