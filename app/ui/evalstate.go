package ui

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// liveJob is what the page knows about one evaluation job: the union of a job.get snapshot and every
// job.progress, job.metrics and job.done push seen since. Pushes and the snapshot can arrive in either
// order (the server broadcasts while the request is in flight), so every apply method only ever moves
// the job forward: more scores, a later state, a final result over a partial one.
type liveJob struct {
	info   protocol.JobInfo
	scores map[string]float64
	result *metrics.Result
	final  bool // result is the exact end result of a finished job
	// listed is set once the job was looked up in jobs.list, so an unknown job is asked for only once.
	listed bool
}

func newLiveJob(id string) *liveJob {
	return &liveJob{info: protocol.JobInfo{ID: id}, scores: map[string]float64{}}
}

// terminal reports whether a job state is an end state.
func terminal(state string) bool {
	return state == protocol.JobDone || state == protocol.JobFailed || state == protocol.JobCancelled
}

// running reports whether the job has not ended yet (as far as this page knows).
func (lj *liveJob) running() bool {
	return lj.info.State == protocol.JobQueued || lj.info.State == protocol.JobRunning
}

// setInfo takes a newer description of the job, never going back from an end state to a running one.
func (lj *liveJob) setInfo(in protocol.JobInfo) {
	if in.ID == "" || (terminal(lj.info.State) && !terminal(in.State)) {
		return
	}
	done := max(lj.info.Done, in.Done)
	lj.info = in
	lj.info.Done = done
}

func (lj *liveJob) addScores(sc []protocol.ImageScore) {
	for _, s := range sc {
		lj.scores[s.Image] = s.Score
	}
}

// applyProgress takes a job.progress push.
func (lj *liveJob) applyProgress(p protocol.JobProgress) {
	lj.addScores(p.Scores)
	if !terminal(lj.info.State) {
		lj.info.State = protocol.JobRunning
	}
	lj.info.Done = max(lj.info.Done, p.Done)
	if p.Total > 0 {
		lj.info.Total = p.Total
	}
}

// applyMetrics takes a job.metrics push; a partial result never replaces the final one.
func (lj *liveJob) applyMetrics(m protocol.JobMetrics) error {
	res, err := decodeResult(m.Result)
	if err != nil {
		return fmt.Errorf("metrics of job %s: %w", m.Job, err)
	}
	if res == nil || (lj.final && m.Partial) {
		return nil
	}
	lj.result, lj.final = res, !m.Partial
	return nil
}

// applyState takes a job.done push or a job.get snapshot: the scores it lists, its state, and its
// result (exact when the job is done, partial while it runs).
func (lj *liveJob) applyState(st protocol.JobState) error {
	lj.setInfo(st.Job)
	lj.addScores(st.Scores)
	res, err := decodeResult(st.Result)
	if err != nil {
		return fmt.Errorf("result of job %s: %w", st.Job.ID, err)
	}
	if res == nil {
		return nil
	}
	fin := st.Job.State == protocol.JobDone && !res.Partial
	if lj.final && !fin {
		return nil
	}
	lj.result, lj.final = res, fin
	return nil
}

func decodeResult(raw json.RawMessage) (*metrics.Result, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r metrics.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// metricRow is one line of the live metrics table.
type metricRow struct {
	key, label string
	value      *float64
	threshold  *float64 // for F1-max rows: the score threshold that reaches it
	hasThr     bool
}

// metricRows lists the metrics the evaluation panel shows, in the paper's order.
func metricRows(r *metrics.Result) []metricRow {
	return []metricRow{
		{key: "image_auroc", label: "Image AUROC", value: r.ImageAUROC},
		{key: "pixel_auroc", label: "Pixel AUROC", value: r.PixelAUROC},
		{key: "pixel_ap", label: "Pixel AP", value: r.PixelAP},
		{key: "pixel_aupro", label: fmt.Sprintf("AUPRO (FPR ≤ %g)", fprLimit(r)), value: r.PixelAUPRO},
		{key: "image_f1_max", label: "F1-max image", value: r.ImageF1Max, threshold: r.ImageF1MaxThreshold, hasThr: true},
		{key: "pixel_f1_max", label: "F1-max pixel", value: r.PixelF1Max, threshold: r.PixelF1MaxThreshold, hasThr: true},
	}
}

func fprLimit(r *metrics.Result) float64 {
	if r.FPRLimit > 0 {
		return r.FPRLimit
	}
	return 0.3
}

// noValue is what the table shows for a metric the data leaves undefined.
const noValue = "—"

// formatMetric shows a metric with four decimals, or noValue when it is undefined.
func formatMetric(v *float64) string {
	if v == nil {
		return noValue
	}
	return strconv.FormatFloat(*v, 'f', 4, 64)
}

// formatThreshold shows a score threshold with enough digits to tell neighbouring scores apart.
func formatThreshold(v *float64) string {
	if v == nil {
		return noValue
	}
	return strconv.FormatFloat(*v, 'g', 5, 64)
}

// rawMetric is the exact value for the data-value attribute: tests and scripts compare it with the
// stored result without parsing rounded text.
func rawMetric(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

// warningFor returns the warning that explains why the metric key is undefined. The metrics engine
// words them "KEY is undefined: why"; a warning of another shape is shown whole rather than lost.
func warningFor(r *metrics.Result, key string) string {
	var other []string
	for _, w := range r.Warnings {
		if strings.HasPrefix(w, key+" ") {
			return w
		}
		if !strings.Contains(w, " is undefined: ") {
			other = append(other, w)
		}
	}
	if len(other) > 0 {
		return strings.Join(other, "; ")
	}
	return key + " is undefined for this data"
}

// Report formats /api/report serves.
var reportFormats = []string{"html", "json", "csv", "md"}

// reportURL links a job's report. The HTML report opens in the browser (a new tab); the others are
// downloads. compare names a second job for a side-by-side HTML comparison.
func reportURL(job, format, compare string, download bool) string {
	q := url.Values{"job": {job}, "format": {format}}
	if compare != "" {
		q.Set("compare", compare)
	}
	if download {
		q.Set("download", "1")
	}
	return "/api/report?" + q.Encode()
}

// progressText is the "done/total" text of the progress bar.
func progressText(in protocol.JobInfo) string {
	if in.Skipped > 0 {
		return fmt.Sprintf("%d/%d (%d skipped)", in.Done, in.Total, in.Skipped)
	}
	return fmt.Sprintf("%d/%d", in.Done, in.Total)
}
