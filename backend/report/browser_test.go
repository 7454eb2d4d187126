//go:build !js

package report_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/shared/protocol"
)

// TestWriteHTML_Chromium_OpensOfflineAndRenders opens a report file in headless Chromium with networking
// disabled, checks that every plot and thumbnail rendered and that the page fetched nothing, and takes a
// screenshot. RDRE_REPORT_HTML names another report file to open instead of the fixture's (the docs
// screenshot is of a real evaluation); RDRE_REPORT_SCREENSHOT saves the screenshot there.
func TestWriteHTML_Chromium_OpensOfflineAndRenders(t *testing.T) {
	page := os.Getenv("RDRE_REPORT_HTML")
	if page == "" {
		f := newFixture(t)
		f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
		in := load(t, f, "job-a")
		page = filepath.Join(t.TempDir(), "report.html")
		if err := os.WriteFile(page, render(t, "html", in.Input), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	opts := testenv.ChromiumOptions(t, 1240, 2300)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+abs), chromedp.WaitVisible(`svg[data-plot="pixel-pro"]`)); err != nil {
		t.Fatalf("open %s in chromium: %v", abs, err)
	}
	type state struct {
		Plots, Images, Loaded, Resources int
		ProWidth, ProHeight              float64
		Title                            string
	}
	var st state
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err = chromedp.Run(ctx, chromedp.Evaluate[state](`(() => {
			const imgs = [...document.images];
			const pro = document.querySelector('svg[data-plot="pixel-pro"] polyline').getBoundingClientRect();
			return {Plots: document.querySelectorAll('svg.plot').length, Images: imgs.length,
				Loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
				Resources: performance.getEntriesByType('resource').length,
				ProWidth: pro.width, ProHeight: pro.height, Title: document.title};
		})()`))
		if err != nil {
			t.Fatalf("inspect page: %v", err)
		}
		if st.Loaded == st.Images || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Plots < 5 {
		t.Errorf("%d plots rendered, want the 4 curves and the histogram", st.Plots)
	}
	if st.Images == 0 || st.Loaded != st.Images {
		t.Errorf("%d of %d gallery thumbnails decoded", st.Loaded, st.Images)
	}
	if st.Resources != 0 {
		t.Errorf("the page fetched %d resources; a self-contained report fetches none", st.Resources)
	}
	if st.ProWidth < 50 || st.ProHeight < 20 {
		t.Errorf("the PRO curve renders as %.0fx%.0f px", st.ProWidth, st.ProHeight)
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	// A rendered report is mostly white with dark text and coloured curves; a blank page is uniform.
	b := img.Bounds()
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r+g+bl < 3*0x4000 {
				dark++
			}
		}
	}
	if b.Dx() < 1000 || dark < 500 {
		t.Errorf("screenshot %dx%d with %d dark samples: the page did not render", b.Dx(), b.Dy(), dark)
	}
	if out := os.Getenv("RDRE_REPORT_SCREENSHOT"); out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		if os.Getenv("RDRE_REPORT_HTML") == "" {
			// Keep the photographed fixture page next to the screenshot, to look at the whole of it.
			if err := os.WriteFile(out+".html", mustRead(t, page), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("screenshot of %q written to %s", st.Title, out)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
