package ui

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

func f64(v float64) *float64 { return &v }

func resultJSON(t *testing.T, r metrics.Result) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestLiveJob_ApplyProgress_AccumulatesScores(t *testing.T) {
	lj := newLiveJob("j1")
	lj.applyProgress(protocol.JobProgress{Job: "j1", Done: 2, Total: 5, Scores: []protocol.ImageScore{{Image: "a", Score: 0.5}, {Image: "b", Score: 0.25}}})
	lj.applyProgress(protocol.JobProgress{Job: "j1", Done: 3, Total: 5, Scores: []protocol.ImageScore{{Image: "c", Score: 0.75}}})
	if len(lj.scores) != 3 || lj.scores["a"] != 0.5 || lj.scores["c"] != 0.75 {
		t.Fatalf("scores %v, want a, b and c", lj.scores)
	}
	if lj.info.State != protocol.JobRunning || lj.info.Done != 3 || lj.info.Total != 5 {
		t.Fatalf("info %+v, want running 3/5", lj.info)
	}
	if got := progressText(lj.info); got != "3/5" {
		t.Fatalf("progress text %q, want 3/5", got)
	}
}

// A snapshot that the server took before some pushes arrived must not undo them.
func TestLiveJob_ApplyState_StaleSnapshotKeepsPushes(t *testing.T) {
	lj := newLiveJob("j1")
	lj.applyProgress(protocol.JobProgress{Job: "j1", Done: 4, Total: 8, Scores: []protocol.ImageScore{{Image: "d", Score: 1}}})
	snap := protocol.JobState{
		Job:    protocol.JobInfo{ID: "j1", Dataset: "ds", State: protocol.JobRunning, Done: 2, Total: 8},
		Scores: []protocol.ImageScore{{Image: "a", Score: 0.1}, {Image: "b", Score: 0.2}},
	}
	if err := lj.applyState(snap); err != nil {
		t.Fatal(err)
	}
	if lj.info.Done != 4 || lj.info.Dataset != "ds" {
		t.Fatalf("after a stale snapshot: %+v, want done 4 and the dataset learnt", lj.info)
	}
	if len(lj.scores) != 3 {
		t.Fatalf("scores %v, want the union of snapshot and pushes", lj.scores)
	}
}

func TestLiveJob_ApplyMetrics_PartialNeverReplacesFinal(t *testing.T) {
	lj := newLiveJob("j1")
	partial := metrics.Result{Partial: true, ImageAUROC: f64(0.5)}
	if err := lj.applyMetrics(protocol.JobMetrics{Job: "j1", Partial: true, Result: resultJSON(t, partial)}); err != nil {
		t.Fatal(err)
	}
	if lj.final || *lj.result.ImageAUROC != 0.5 {
		t.Fatalf("after a partial push: final %v, auroc %v", lj.final, *lj.result.ImageAUROC)
	}
	done := protocol.JobState{Job: protocol.JobInfo{ID: "j1", State: protocol.JobDone, Done: 8, Total: 8},
		Result: resultJSON(t, metrics.Result{ImageAUROC: f64(0.875)})}
	if err := lj.applyState(done); err != nil {
		t.Fatal(err)
	}
	if !lj.final || *lj.result.ImageAUROC != 0.875 {
		t.Fatalf("after job.done: final %v, auroc %v, want final 0.875", lj.final, *lj.result.ImageAUROC)
	}
	// A late partial push (sent before job.done, delivered after) and a late running snapshot change nothing.
	if err := lj.applyMetrics(protocol.JobMetrics{Job: "j1", Partial: true, Result: resultJSON(t, partial)}); err != nil {
		t.Fatal(err)
	}
	if err := lj.applyState(protocol.JobState{Job: protocol.JobInfo{ID: "j1", State: protocol.JobRunning, Done: 7}, Result: resultJSON(t, partial)}); err != nil {
		t.Fatal(err)
	}
	if !lj.final || *lj.result.ImageAUROC != 0.875 || lj.info.State != protocol.JobDone {
		t.Fatalf("late partial data replaced the final result: final %v auroc %v state %s", lj.final, *lj.result.ImageAUROC, lj.info.State)
	}
	lj.applyProgress(protocol.JobProgress{Job: "j1", Done: 8, Total: 8})
	if lj.info.State != protocol.JobDone || lj.running() {
		t.Fatalf("a late progress push made the finished job %s", lj.info.State)
	}
}

func TestLiveJob_ApplyMetrics_BadJSON(t *testing.T) {
	lj := newLiveJob("j1")
	err := lj.applyMetrics(protocol.JobMetrics{Job: "j1", Partial: true, Result: json.RawMessage(`{"image_auroc": "x"}`)})
	if err == nil || !strings.Contains(err.Error(), "j1") {
		t.Fatalf("err %v, want an error naming the job", err)
	}
	if lj.result != nil {
		t.Fatal("a malformed result was kept")
	}
}

func TestFormatMetric_NullAndValues(t *testing.T) {
	for _, c := range []struct {
		v    *float64
		want string
	}{{nil, noValue}, {f64(0.99123456), "0.9912"}, {f64(1), "1.0000"}} {
		if got := formatMetric(c.v); got != c.want {
			t.Errorf("formatMetric(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	a, b := 0.1, 0.2
	if got := rawMetric(f64(a + b)); got != "0.30000000000000004" {
		t.Errorf("rawMetric keeps %q, want every digit", got)
	}
	if rawMetric(nil) != "" {
		t.Error("rawMetric(nil) not empty")
	}
}

func TestWarningFor_PicksTheMetricsWarning(t *testing.T) {
	r := &metrics.Result{Warnings: []string{
		"pixel_auroc is undefined: no anomalous pixels",
		"pixel_aupro is undefined: no ground-truth region",
	}}
	if got := warningFor(r, "pixel_aupro"); got != "pixel_aupro is undefined: no ground-truth region" {
		t.Fatalf("warningFor pixel_aupro = %q", got)
	}
	if got := warningFor(r, "pixel_ap"); !strings.Contains(got, "pixel_ap") {
		t.Fatalf("warningFor without a matching warning = %q, want it to name the metric", got)
	}
	odd := &metrics.Result{Warnings: []string{"no images yet"}}
	if got := warningFor(odd, "image_auroc"); got != "no images yet" {
		t.Fatalf("a general warning was lost: %q", got)
	}
}

func TestMetricRows_OrderAndThresholds(t *testing.T) {
	r := &metrics.Result{ImageAUROC: f64(1), PixelF1Max: f64(0.5), PixelF1MaxThreshold: f64(0.7), FPRLimit: 0.3}
	rows := metricRows(r)
	keys := make([]string, len(rows))
	for i, row := range rows {
		keys[i] = row.key
	}
	if got := strings.Join(keys, ","); got != "image_auroc,pixel_auroc,pixel_ap,pixel_aupro,image_f1_max,pixel_f1_max" {
		t.Fatalf("rows %s", got)
	}
	if !rows[5].hasThr || *rows[5].threshold != 0.7 || rows[0].hasThr {
		t.Fatalf("threshold columns wrong: %+v", rows)
	}
	if !strings.Contains(rows[3].label, "0.3") {
		t.Fatalf("AUPRO label %q does not state its FPR limit", rows[3].label)
	}
}

func TestReportURL_Formats(t *testing.T) {
	u, err := url.Parse(reportURL("20260101-000000-ab&c", "csv", "", true))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/api/report" || q.Get("job") != "20260101-000000-ab&c" || q.Get("format") != "csv" || q.Get("download") != "1" || q.Has("compare") {
		t.Fatalf("report URL %s", u)
	}
	u, _ = url.Parse(reportURL("a", "html", "b", false))
	if q := u.Query(); q.Get("compare") != "b" || q.Has("download") {
		t.Fatalf("comparison URL %s", u)
	}
}
