//go:build !js

package jobs

import (
	"fmt"
	"sort"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/shared/protocol"
)

// AddPredictor registers a model that is already open, such as a remote one (package oip), as AddModel
// registers a file; the Runner closes it. Its ID is Info().SHA256: a remote model that reports its file's
// SHA-256 has the ID of the same file opened locally, so it may resume that file's jobs (its maps are the
// same). A model whose ID is already loaded is refused.
func (r *Runner) AddPredictor(m inference.Predictor) (protocol.ModelInfo, error) {
	in := m.Info()
	info := protocol.ModelInfo{
		SHA256: in.SHA256, Path: in.Path, Name: modelName(in), InputSize: in.InputSize, Teacher: in.Teacher,
		Category: in.Category, Device: in.Device, Metadata: in.Metadata, Thresholds: in.Thresholds,
	}
	r.mu.Lock()
	old, dup := r.models[in.SHA256]
	r.mu.Unlock()
	if dup {
		return protocol.ModelInfo{}, fmt.Errorf("add model %s: the same model (sha256 %.12s) is already loaded from %s", in.Path, in.SHA256, old.info.Path)
	}
	if err := r.st.PutModel(in.SHA256, info); err != nil {
		return protocol.ModelInfo{}, fmt.Errorf("register model %s: %w", in.Path, err)
	}
	r.mu.Lock()
	r.models[in.SHA256] = &modelEntry{info: info, model: m}
	r.mu.Unlock()
	r.log.Info("model ready", "path", in.Path, "sha256", in.SHA256[:12], "device", in.Device, "reason", in.ShortDeviceReason())
	r.log.Debug("model device", "sha256", in.SHA256[:12], "reason", in.DeviceReason)
	return info, nil
}

// LocalModels returns the models opened from files, by path, to serve them to others (package oip).
func (r *Runner) LocalModels() []*inference.Model {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*inference.Model
	for _, me := range r.models {
		if m, ok := me.model.(*inference.Model); ok {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Info().Path < out[j].Info().Path })
	return out
}
