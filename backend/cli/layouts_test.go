//go:build !js

package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdre-studio/studio/backend/dataset/datasettest"
	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/shared/protocol"
)

// sharedCases is ../shared/cases seen from the repository root, when this checkout has it.
func sharedCases(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(filepath.Dir(wd)), "..", "shared", "cases")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared cases absent at %s (they live beside the checkout, not in it); TestLayouts_InferEvalServe_SameImages covers the same encodings with generated data", dir)
	}
	return dir
}

// evalJSON runs `rdre eval` in-process and decodes its JSON.
func evalJSON(t *testing.T, args ...string) (map[string]any, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runEval(args, &out, &errb)
	if code != 0 {
		return nil, errb.String(), code
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("eval output is not JSON: %v\n%s", err, out.String())
	}
	return res, errb.String(), code
}

// TestEval_SharedCases_MatchExpected evaluates every case of ../shared/cases that has an expected.json
// (masks written by other tools, float64 maps) and checks every value against it.
func TestEval_SharedCases_MatchExpected(t *testing.T) {
	dir := sharedCases(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		exp := filepath.Join(dir, e.Name(), "expected.json")
		raw, err := os.ReadFile(exp)
		if err != nil {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			var want map[string]any
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			got, stderr, code := evalJSON(t, "--maps", filepath.Join(dir, e.Name(), "maps"), "--gt", filepath.Join(dir, e.Name(), "cat"))
			if code != 0 {
				t.Fatalf("eval exit %d: %s", code, stderr)
			}
			for k, v := range want {
				if k == "counts" {
					gc, _ := got["counts"].(map[string]any)
					for ck, cv := range v.(map[string]any) {
						if gc[ck] != cv {
							t.Errorf("counts.%s = %v, want %v", ck, gc[ck], cv)
						}
					}
					continue
				}
				g, ok := got[k].(float64)
				if !ok || math.Abs(g-v.(float64)) > 1e-9 {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
	if n == 0 {
		t.Fatalf("no case with expected.json under %s", dir)
	}
}

// TestLayouts_InferEvalServe_SameImages: for the generated fixture of every layout, `rdre serve` lists
// the fixture's images, `rdre infer` writes one map per test image under its key, and `rdre eval` of those
// maps counts the same images, labels and defect pixels (each fixture uses another mask encoding).
func TestLayouts_InferEvalServe_SameImages(t *testing.T) {
	lib, model := inferFixture(t)
	for _, layout := range datasettest.Layouts() {
		t.Run(layout, func(t *testing.T) {
			fx, err := datasettest.Write(t.TempDir(), layout)
			if err != nil {
				t.Fatal(err)
			}
			test := fx.Split(protocol.SplitTest)
			wantAnom, wantPix, wantMasked := 0, 0, 0
			for _, im := range test {
				if im.Kind != protocol.KindGood {
					wantAnom++
				}
				if im.DefectPixels > 0 {
					wantMasked++
				}
				wantPix += im.DefectPixels
			}

			// serve
			served := serveImages(t, fx.Root)
			var ids []string
			for _, im := range fx.Images {
				ids = append(ids, im.ID+" "+im.Split+" "+im.Kind+" "+im.Key)
			}
			if strings.Join(served, "\n") != strings.Join(ids, "\n") {
				t.Errorf("serve lists\n%s\nwant\n%s", strings.Join(served, "\n"), strings.Join(ids, "\n"))
			}

			// infer
			maps := filepath.Join(t.TempDir(), "maps")
			var out, errb bytes.Buffer
			if code := runInfer([]string{"--model", model, "--ort-lib", lib, "--data", fx.Root, "--out", maps, "--device", "cpu", "--quiet"}, &out, &errb); code != 0 {
				t.Fatalf("infer exit %d: %s", code, errb.String())
			}
			for _, im := range test {
				if _, err := os.Stat(filepath.Join(maps, filepath.FromSlash(im.Key)+".npy")); err != nil {
					t.Errorf("infer wrote no map for %s: %v", im.Key, err)
				}
			}

			// eval
			res, stderr, code := evalJSON(t, "--maps", maps, "--gt", fx.Root, "--scores", filepath.Join(maps, "scores.json"))
			if code != 0 {
				t.Fatalf("eval exit %d: %s", code, stderr)
			}
			c := res["counts"].(map[string]any)
			check := func(name string, want int) {
				if got, _ := c[name].(float64); int(got) != want {
					t.Errorf("eval counts.%s = %v, want %d", name, c[name], want)
				}
			}
			check("images", len(test))
			check("anomalous_images", wantAnom)
			check("normal_images", len(test)-wantAnom)
			check("anomalous_pixels", wantPix)
			check("images_with_nonempty_mask", wantMasked)
			check("pixels", len(test)*datasettest.Size*datasettest.Size)
			warnings, _ := json.Marshal(res["warnings"])
			for _, e := range fx.Extra {
				if !strings.Contains(string(warnings), e) {
					t.Errorf("eval warnings %s do not name %s", warnings, e)
				}
			}
			// --strict turns those warnings into a failure.
			if len(fx.Extra) > 0 {
				if _, stderr, code := evalJSON(t, "--strict", "--maps", maps, "--gt", fx.Root); code != 1 || !strings.Contains(stderr, fx.Extra[0]) {
					t.Errorf("eval --strict: exit %d, stderr %q", code, stderr)
				}
			}
		})
	}
}

// serveImages starts a real server on root and lists its images over the websocket, as the UI does.
func serveImages(t *testing.T, root string) []string {
	t.Helper()
	s, err := server.New(server.Config{Data: []string{root}, Workspace: filepath.Join(t.TempDir(), "ws.db")})
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	hs := httptest.NewServer(s.Handler())
	defer func() { hs.Close(); s.Close() }()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	read := func(typ string) protocol.Envelope {
		for {
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			var env protocol.Envelope
			if err := ws.ReadJSON(&env); err != nil {
				t.Fatalf("read %s: %v", typ, err)
			}
			if env.Type == typ {
				return env
			}
		}
	}
	read(protocol.TypeHello)
	env, _ := protocol.New("1", protocol.TypeDatasetsList, struct{}{})
	if err := ws.WriteJSON(env); err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasets []protocol.DatasetInfo `json:"datasets"`
	}
	if err := json.Unmarshal(read(protocol.TypeDatasets).Payload, &ds); err != nil || len(ds.Datasets) != 1 {
		t.Fatalf("datasets: %v %+v", err, ds)
	}
	env, _ = protocol.New("2", protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: ds.Datasets[0].ID})
	if err := ws.WriteJSON(env); err != nil {
		t.Fatal(err)
	}
	var imgs protocol.ImagesReply
	if err := json.Unmarshal(read(protocol.TypeImages).Payload, &imgs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, im := range imgs.Images {
		out = append(out, im.ID+" "+im.Split+" "+im.Kind+" "+im.Key)
	}
	sort.Strings(out)
	return out
}

// TestCommands_Help_ExitZero: -h and --help print the usage and exit 0 for every command; an unknown flag
// is a usage error (exit 2).
func TestCommands_Help_ExitZero(t *testing.T) {
	for _, c := range commands {
		for _, h := range []string{"-h", "--help"} {
			var out, errb bytes.Buffer
			if code := c.Run([]string{h}, &out, &errb); code != 0 || errb.Len()+out.Len() == 0 {
				t.Errorf("rdre %s %s: exit %d, %d bytes of usage", c.Name, h, code, errb.Len()+out.Len())
			}
		}
		var out, errb bytes.Buffer
		if code := c.Run([]string{"--no-such-flag"}, &out, &errb); code != 2 {
			t.Errorf("rdre %s --no-such-flag: exit %d, want 2", c.Name, code)
		}
	}
}

// TestIndex_Run_CountsFixture: `rdre index` reports the layout, the per-split counts and the mask count of
// a generated dataset, and fails clearly on a folder of no known layout.
func TestIndex_Run_CountsFixture(t *testing.T) {
	fx, err := datasettest.Write(t.TempDir(), "mvtec2")
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := runIndex([]string{"--data", fx.Root}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep indexReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int{}
	masked := map[string]int{}
	for _, im := range fx.Images {
		if want[im.Split] == nil {
			want[im.Split] = map[string]int{}
		}
		want[im.Split][im.Kind]++
		if len(im.Masks) > 0 {
			masked[im.Split]++
		}
	}
	if rep.Layout != "mvtec2" || !reflect.DeepEqual(rep.Counts, want) || !reflect.DeepEqual(rep.Masked, masked) {
		t.Fatalf("index: layout %s counts %v masked %v; want %v %v", rep.Layout, rep.Counts, rep.Masked, want, masked)
	}
	errb.Reset()
	if code := runIndex([]string{"--data", t.TempDir()}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no known layout") {
		t.Fatalf("empty folder: exit %d, %q", code, errb.String())
	}
}

func TestServe_DecodeBudgetFlag(t *testing.T) {
	defer imageio.SetDecodeBudget(0)
	for _, bad := range []string{"lots", "-5MiB", "1000", "0"} {
		var stdout, stderr bytes.Buffer
		if code := Main([]string{"serve", "--data", t.TempDir(), "--decode-budget", bad}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--decode-budget") {
			t.Errorf("--decode-budget %s: exit %d, %q; want 2 and a message naming the flag", bad, code, stderr.String())
		}
	}
	if err := setDecodeBudget("300MiB"); err != nil || imageio.DecodeBudget().Size() != 300<<20 {
		t.Fatalf("--decode-budget 300MiB: %v, budget %d", err, imageio.DecodeBudget().Size())
	}
}
