//go:build !js

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/shared/protocol"
)

// TestUI_Train_FromThePanel trains a model from the Train panel (real PyTorch, the built-in MobileNetV2
// teacher, a tiny schedule), follows its streamed progress and previews in a second tab, sees it
// finish ("done"), and finds the new model registered and its evaluation on the test images shown in
// the Evaluate panel. The server runs without --model: training is how this dataset gets one. The fixture
// gets 26 training images, so the floor is checked: plain RD trains after the recipe and the panel says
// which model gives the score and the map.
func TestUI_Train_FromThePanel(t *testing.T) {
	testenv.NeedTorch(t)
	ctx := newBrowser(t)
	root := writeFixture(t, t.TempDir())
	src, err := os.ReadFile(filepath.Join(root, "train", "good", "000.png"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 4; i < 26; i++ {
		if err := os.WriteFile(filepath.Join(root, "train", "good", fmt.Sprintf("%03d.png", i)), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServerArgs(t, []string{root}, []string{"--python", testenv.Python, "--device", "cpu", "--runs", filepath.Join(t.TempDir(), "runs")})
	ws := dialWS(t, srv.URL)
	ds := datasetID(t, ws, "widget")

	grid := srv.URL + "/dataset?id=" + ds.ID
	run(t, ctx, chromedp.Navigate(grid))
	waitJS(t, ctx, 30*time.Second, "the train panel", testid("train-panel"))
	// The panel probes Python and PyTorch first; the Train button is enabled once they are found.
	waitJS(t, ctx, 120*time.Second, "the trainer ready", testid("train-start")+` && !`+testid("train-start")+`.disabled`)
	other := newTab(t, ctx)
	run(t, other, chromedp.Navigate(grid))
	waitJS(t, other, 30*time.Second, "the second tab's panel", testid("train-panel"))
	eval[chromedp.Void](t, other, `(() => { window.stages = []; const note = () => {
		const e = document.querySelector('[data-testid=train-progress]');
		if (e && e.dataset.stage && window.stages[window.stages.length - 1] !== e.dataset.stage) window.stages.push(e.dataset.stage); };
		new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true}); })()`)

	for id, v := range map[string]string{"train-size": "32", "train-steps-student": "6", "train-steps-seg": "4", "train-batch": "2",
		"train-device": "cpu", "train-threads": "1"} {
		setInput(t, ctx, id, v)
	}
	// The floor is on by default for RD-RE, and cannot be asked of plain RD.
	if !eval[bool](t, ctx, testid("train-floor")+`.checked && !`+testid("train-floor")+`.disabled`) {
		t.Fatal("the floor checkbox is not on by default")
	}
	setInput(t, ctx, "train-preset", protocol.PresetPlainRD)
	// Plain RD has no segmentation stage, so its steps field and fine-tuning are not offered either.
	waitJS(t, ctx, 5*time.Second, "the floor and the segmentation steps off for plain RD", testid("train-floor")+`.disabled && !`+testid("train-floor")+`.checked && `+testid("train-steps-seg")+`.disabled && `+testid("train-real-masks")+`.disabled`)
	setInput(t, ctx, "train-preset", protocol.PresetRDRE)
	waitJS(t, ctx, 5*time.Second, "the floor and the segmentation steps back for RD-RE", testid("train-floor")+`.checked && !`+testid("train-floor")+`.disabled && !`+testid("train-steps-seg")+`.disabled && `+testid("train-steps-seg")+`.value === '4'`)
	start := time.Now()
	clickTestID(t, ctx, "train-start")
	waitJS(t, ctx, 20*time.Second, "the run's progress", testid("train-progress")+` && `+testid("train-state"))
	waitJS(t, ctx, 6*time.Minute, "train-state done", testid("train-state")+`.textContent === 'done'`)
	t.Logf("training from the panel: done %v after the click", time.Since(start).Round(time.Second))
	if got := eval[string](t, ctx, testid("train-progress")+`.dataset.state`); got != protocol.TrainDone {
		t.Fatalf("progress state %q", got)
	}
	// The previews of synthetic training samples loaded.
	waitJS(t, ctx, 30*time.Second, "the previews", `(() => { const i = [...document.querySelectorAll('[data-testid=train-preview] img')];
		return i.length === 3 && i.every(x => x.complete && x.naturalWidth > 0); })()`)

	// The second tab followed the same stream through the stages.
	waitJS(t, other, 20*time.Second, "the second tab done", testid("train-state")+`.textContent === 'done'`)
	stages := eval[[]string](t, other, `window.stages`)
	want := map[string]bool{}
	for _, s := range stages {
		want[s] = true
	}
	if !want[protocol.StageStudent] || !want[protocol.StageSeg] || !want[protocol.StageBaseline] || !want[protocol.StageExport] {
		t.Fatalf("second tab saw stages %v", stages)
	}
	floorText := eval[string](t, ctx, testid("train-floor-result")+`.textContent`)
	if !strings.HasPrefix(floorText, "Floor: image score ") || !strings.Contains(floorText, "held-out normal images") {
		t.Fatalf("floor result %q", floorText)
	}
	// The run's header counts the images the floor held out beside those trained on.
	if head := eval[string](t, ctx, `document.querySelector('[data-testid=train-state]').parentElement.textContent`); !strings.Contains(head, "more held out to compare with plain RD") {
		t.Fatalf("run header %q", head)
	}
	if done := eval[string](t, ctx, testid("train-progress")+`.textContent`); !strings.Contains(done, "plain-RD steps for the floor") {
		t.Fatalf("done text %q", done)
	}

	// The model is registered and its evaluation is shown in the Evaluate panel of the tab that started it.
	var runs protocol.TrainListReply
	ws.request(t, protocol.TypeTrainList, protocol.TrainListRequest{Dataset: ds.ID}, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].State != protocol.TrainDone || runs.Runs[0].Model == "" || runs.Runs[0].Job == "" {
		t.Fatalf("runs: %+v", runs.Runs)
	}
	r := runs.Runs[0]
	waitJS(t, ctx, 30*time.Second, "the new model in the model select", fmt.Sprintf(`[...document.querySelectorAll('[data-testid=model-select] option')].some(o => o.value === %q)`, r.Model))
	waitJS(t, ctx, 30*time.Second, "the evaluation job selected", fmt.Sprintf(`new URLSearchParams(location.search).get('job') === %q`, r.Job))
	waitJS(t, ctx, 3*time.Minute, "the evaluation's final metrics", testid("live-metrics")+` && `+testid("live-metrics")+`.dataset.state === 'final'`)
	var st protocol.JobState
	ws.request(t, protocol.TypeJobGet, protocol.JobRef{Job: r.Job}, &st)
	if st.Job.State != protocol.JobDone || st.Job.Model != r.Model || st.Job.Total != countImages(t, root, "test", "") {
		t.Fatalf("evaluation job: %+v", st.Job)
	}
	screenshot(t, ctx, "train-panel.png")
}
