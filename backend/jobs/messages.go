//go:build !js

package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"strconv"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

// HandleJobMessage implements server.JobRunner.
func (r *Runner) HandleJobMessage(_ context.Context, c server.Client, env protocol.Envelope) bool {
	reply := func(typ string, payload any, err error) {
		if err != nil {
			code := protocol.CodeBadInput
			switch {
			case errors.Is(err, store.ErrNotFound), errors.Is(err, dataset.ErrNotFound):
				code = protocol.CodeNotFound
			}
			e, _ := protocol.New(env.ID, protocol.TypeError, protocol.ErrorPayload{Code: code, Message: err.Error(), RequestType: env.Type})
			c.Send(e)
			return
		}
		out, _ := protocol.New(env.ID, typ, payload)
		c.Send(out)
	}
	switch env.Type {
	case protocol.TypeModelsList:
		reply(protocol.TypeModels, protocol.ModelsReply{Models: r.Models()}, nil)
	case protocol.TypeJobsList:
		jobs, err := r.Jobs()
		if jobs == nil {
			jobs = []protocol.JobInfo{}
		}
		reply(protocol.TypeJobs, protocol.JobsReply{Jobs: jobs}, err)
	case protocol.TypeJobStart:
		var req protocol.JobStartRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			reply("", nil, err)
			return true
		}
		info, err := r.Start(req)
		reply(protocol.TypeJob, info, err)
	case protocol.TypeJobCancel:
		var req protocol.JobRef
		if err := protocol.DecodePayload(env, &req); err != nil {
			reply("", nil, err)
			return true
		}
		// Cancel waits for the current batch; do not hold up this client's other requests meanwhile.
		go func() {
			info, err := r.Cancel(req.Job)
			reply(protocol.TypeJob, info, err)
		}()
	case protocol.TypeModelCalibrate:
		var req protocol.CalibrateRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			reply("", nil, err)
			return true
		}
		// Inference over a split takes seconds to minutes: answer when done, without holding up this
		// client's other requests, and tell every client that the model's thresholds changed.
		go func() {
			c, err := r.Calibrate(context.Background(), req)
			reply(protocol.TypeCalibration, c, err)
			if err == nil {
				if push, perr := protocol.New("", protocol.TypeModels, protocol.ModelsReply{Models: r.Models()}); perr == nil {
					r.srv.Broadcast(push)
				}
			}
		}()
	case protocol.TypeJobGet:
		var req protocol.JobRef
		if err := protocol.DecodePayload(env, &req); err != nil {
			reply("", nil, err)
			return true
		}
		st, err := r.State(req.Job)
		reply(protocol.TypeJobState, st, err)
	default:
		return false
	}
	return true
}

// heatmapHandler serves a cached anomaly map as a 16-bit grey PNG scaled to the map's own range, which
// the headers X-Map-Min and X-Map-Max give, so the browser can threshold in the model's units.
func (r *Runner) heatmapHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		m, mw, mh, err := r.st.Map(q.Get("job"), q.Get("id"))
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, store.ErrNotFound) {
				code = http.StatusNotFound
			}
			http.Error(w, fmt.Sprintf("map of %q in job %q: %v", q.Get("id"), q.Get("job"), err), code)
			return
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range m {
			lo = math.Min(lo, float64(v))
			hi = math.Max(hi, float64(v))
		}
		scale := 0.0
		if hi > lo {
			scale = 65535 / (hi - lo)
		}
		g := image.NewGray16(image.Rect(0, 0, mw, mh))
		for i, v := range m {
			u := uint16(math.Round((float64(v) - lo) * scale))
			g.Pix[2*i], g.Pix[2*i+1] = uint8(u>>8), uint8(u)
		}
		var buf bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, g); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("X-Map-Min", strconv.FormatFloat(lo, 'g', -1, 64))
		w.Header().Set("X-Map-Max", strconv.FormatFloat(hi, 'g', -1, 64))
		w.Header().Set("Cache-Control", "private, max-age=3600")
		w.Write(buf.Bytes())
	})
}
