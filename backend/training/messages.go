//go:build !js

package training

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

// envWait bounds how long train.list waits for the Python probe before answering "checking".
const envWait = 2 * time.Second

// HandleJobMessage answers the train.* messages (server.JobRunner).
func (r *Runner) HandleJobMessage(_ context.Context, c server.Client, env protocol.Envelope) bool {
	reply := func(typ string, payload any, err error) {
		if err != nil {
			code := protocol.CodeBadInput
			switch {
			case errors.Is(err, store.ErrNotFound):
				code = protocol.CodeNotFound
			case errors.Is(err, ErrBusy):
				code = protocol.CodeConflict
			}
			e, _ := protocol.New(env.ID, protocol.TypeError, protocol.ErrorPayload{Code: code, Message: err.Error(), RequestType: env.Type})
			c.Send(e)
			return
		}
		out, _ := protocol.New(env.ID, typ, payload)
		c.Send(out)
	}
	switch env.Type {
	case protocol.TypeTrainList:
		var req protocol.TrainListRequest
		if len(env.Payload) > 0 {
			if err := protocol.DecodePayload(env, &req); err != nil {
				reply("", nil, err)
				return true
			}
		}
		// The first answer may wait for the Python probe (importing torch takes seconds): not on the
		// connection's read loop.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), envWait)
			defer cancel()
			runs, err := r.List(req.Dataset)
			reply(protocol.TypeTrains, protocol.TrainListReply{Runs: runs, Env: r.Env(ctx)}, err)
		}()
	case protocol.TypeTrainStart:
		var req protocol.TrainStartRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			reply("", nil, err)
			return true
		}
		info, err := r.Start(req)
		reply(protocol.TypeTrain, info, err)
	case protocol.TypeTrainCancel, protocol.TypeTrainResume:
		var req protocol.TrainRef
		if err := protocol.DecodePayload(env, &req); err != nil {
			reply("", nil, err)
			return true
		}
		go func() {
			var info protocol.TrainInfo
			var err error
			if env.Type == protocol.TypeTrainCancel {
				info, err = r.Cancel(req.Run) // waits for the trainer to save its checkpoint
			} else {
				info, err = r.Resume(req.Run)
			}
			reply(protocol.TypeTrain, info, err)
		}()
	default:
		return false
	}
	return true
}

// previewName is the only shape of file the preview route serves.
var previewName = regexp.MustCompile(`^(student|seg)-[0-9]{6}-(image|mask|prediction)\.png$`)

// previewHandler serves GET /api/train/preview?run=ID&file=NAME: a preview PNG of that run, from that
// run's previews folder only (the name must have the trainer's shape, and the folder is opened as an
// os.Root, so nothing outside it can be reached).
func (r *Runner) previewHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		id, name := q.Get("run"), q.Get("file")
		if !previewName.MatchString(name) {
			http.Error(w, "preview: want file=STAGE-NNNNNN-{image,mask,prediction}.png", http.StatusBadRequest)
			return
		}
		info, err := r.Get(id)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, store.ErrNotFound) {
				code = http.StatusNotFound
			}
			http.Error(w, fmt.Sprintf("preview: run %q: %v", truncate(id, 64), err), code)
			return
		}
		root, err := os.OpenRoot(filepath.Join(info.Dir, "previews"))
		if err != nil {
			http.Error(w, "preview: this run has no previews yet", http.StatusNotFound)
			return
		}
		defer root.Close()
		f, err := root.Open(name)
		if err != nil {
			http.Error(w, "preview: no such preview in this run", http.StatusNotFound)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			http.Error(w, "preview: not a file", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "private, max-age=3600")
		http.ServeContent(w, req, name, st.ModTime(), f)
	})
}
