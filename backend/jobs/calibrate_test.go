//go:build !js

package jobs

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/inference"
	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

func TestRunner_Calibrate_StoredUsedBySegF1AndKeptAcrossRestart(t *testing.T) {
	ws := filepath.Join(t.TempDir(), "ws.db")
	e := start(t, ws)
	a, b := e.dial(t), e.dial(t)

	// The test split is never a calibration set.
	a.send("bad", protocol.TypeModelCalibrate, protocol.CalibrateRequest{Dataset: e.dsID, Model: e.model.SHA256, Split: protocol.SplitTest})
	if f := a.next(); f.Type != protocol.TypeError || !strings.Contains(string(f.Payload), "not the test set") {
		t.Fatalf("calibration on the test split: %s %s", f.Type, f.Payload)
	}

	a.send("c", protocol.TypeModelCalibrate, protocol.CalibrateRequest{Dataset: e.dsID, Model: e.model.SHA256})
	frames := a.until(protocol.TypeCalibration)
	c := decode[protocol.Calibration](t, frames[len(frames)-1])
	ds, _ := e.srv.Dataset(e.dsID)
	goodTrain := 0
	for _, im := range ds.Images() {
		if im.Split == protocol.SplitTrain && im.Kind == protocol.KindGood {
			goodTrain++
		}
	}
	if c.Split != protocol.SplitTrain || c.Images != goodTrain || c.Pixel == nil || c.Image == nil ||
		c.Pixel.Method != "mean-kstd:3" || c.Image.Method != "image-fpr:0.05" || c.Pixels == 0 {
		t.Fatalf("calibration on the demo's %d good train images: %+v", goodTrain, c)
	}
	if want := c.PixelMean + 3*c.PixelStd; math.Abs(c.Pixel.Threshold-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Fatalf("mean-kstd:3 threshold %v, mean + 3 std = %v", c.Pixel.Threshold, want)
	}
	// Every client learns the model's new thresholds.
	pushed := decode[protocol.ModelsReply](t, b.until(protocol.TypeModels)[0])
	if len(pushed.Models) != 1 || pushed.Models[0].Thresholds[protocol.ThresholdPixelNormal] != c.Pixel.Threshold ||
		pushed.Models[0].Calibration == nil || pushed.Models[0].Calibration.ID != c.ID {
		t.Fatalf("models pushed after the calibration: %+v", pushed)
	}

	// An evaluation started now computes SegF1 at the calibrated threshold and names its source.
	a.send("j", protocol.TypeJobStart, protocol.JobStartRequest{Dataset: e.dsID, Model: e.model.SHA256})
	jf := a.until(protocol.TypeJobDone)
	var started protocol.JobInfo
	for _, f := range jf {
		if f.Type == protocol.TypeJob {
			started = decode[protocol.JobInfo](t, f)
		}
	}
	if started.Threshold == nil || started.Threshold.Pixel != c.Pixel.Threshold || started.Threshold.Image == nil || *started.Threshold.Image != c.Image.Threshold {
		t.Fatalf("job threshold %+v, want the calibration's %v / %v", started.Threshold, c.Pixel.Threshold, c.Image.Threshold)
	}
	var res sm.Result
	if err := json.Unmarshal(decode[protocol.JobState](t, jf[len(jf)-1]).Result, &res); err != nil {
		t.Fatal(err)
	}
	if res.Threshold == nil || res.Threshold.Pixel != c.Pixel.Threshold || !strings.Contains(res.Threshold.Source, "mean-kstd:3") ||
		!res.PixelSegF1.Known || res.PixelSegF1.Value == nil || !res.Threshold.ImageFPR.Known {
		t.Fatalf("result threshold %+v, SegF1 %+v", res.Threshold, res.PixelSegF1)
	}
	// The downloaded model carries the calibration in its metadata; ONNX Runtime reads it back.
	resp, err := http.Get(e.hs.URL + "/api/model?sha=" + e.model.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "-calibrated.onnx") {
		t.Fatalf("model download: HTTP %d %v", resp.StatusCode, resp.Header)
	}
	p := filepath.Join(t.TempDir(), "calibrated.onnx")
	os.WriteFile(p, raw, 0o644)
	m, err := inference.Open(p, inference.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatalf("the downloaded model does not open: %v", err)
	}
	in := m.Info()
	m.Close()
	if in.Thresholds[protocol.ThresholdPixelNormal] != c.Pixel.Threshold || in.Thresholds[protocol.ThresholdImageNormal] != c.Image.Threshold ||
		!strings.Contains(in.Metadata[inference.KeyCalibration], c.ID) {
		t.Fatalf("downloaded model: thresholds %v, calibration %q", in.Thresholds, in.Metadata[inference.KeyCalibration])
	}
	if resp, err := http.Get(e.hs.URL + "/api/model?sha=nope"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("unknown model: %v %v", resp.StatusCode, err)
	}
	e.stop()

	// The calibration lives in the workspace: a restarted server gives the model the same thresholds.
	e2 := start(t, ws)
	defer e2.stop()
	if e2.model.Calibration == nil || e2.model.Calibration.ID != c.ID || e2.model.Thresholds[protocol.ThresholdPixelNormal] != c.Pixel.Threshold {
		t.Fatalf("after a restart the model has calibration %+v, thresholds %v", e2.model.Calibration, e2.model.Thresholds)
	}
}
