//go:build !js

package onnxmeta_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/onnxmeta"
	"github.com/rdre-studio/studio/internal/testalloc"
)

// The demo model's metadata as this package reads it equals ONNX Runtime's reading, and a rewritten
// file is still a model ONNX Runtime runs, with the new metadata and the same outputs.
func TestSet_DemoModel_ONNXRuntimeReadsItBack(t *testing.T) {
	if err := inference.Init(testenv.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(testenv.RepoRoot(t), "models", "default", "demo.onnx")
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := inference.Open(src, inference.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	got, err := onnxmeta.Read(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, orig.Info().Metadata) {
		t.Fatalf("metadata read here %v, ONNX Runtime reads %v", got, orig.Info().Metadata)
	}

	out, err := onnxmeta.Set(raw, map[string]string{
		inference.KeyThresholds: `{"image_normal":0.25,"pixel_normal":0.5}`,
		"rdre.calibration":      `{"split":"validation"}`,
		inference.KeyTeacher:    "", // removed
	})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := onnxmeta.Set(out, map[string]string{"rdre.calibration": `{"split":"validation"}`}); !bytes.Equal(again, out) {
		t.Fatal("setting a key to its value changed the file")
	}
	p := filepath.Join(t.TempDir(), "calibrated.onnx")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := inference.Open(p, inference.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatalf("ONNX Runtime refuses the rewritten file: %v", err)
	}
	defer m.Close()
	in := m.Info()
	if in.Thresholds["pixel_normal"] != 0.5 || in.Thresholds["image_normal"] != 0.25 || in.Metadata["rdre.calibration"] == "" {
		t.Fatalf("rewritten model: thresholds %v, metadata %v", in.Thresholds, in.Metadata)
	}
	if _, ok := in.Metadata[inference.KeyTeacher]; ok {
		t.Fatalf("%s was not removed: %v", inference.KeyTeacher, in.Metadata)
	}
	for k, v := range orig.Info().Metadata {
		if k != inference.KeyThresholds && k != inference.KeyTeacher && in.Metadata[k] != v {
			t.Errorf("key %s changed from %q to %q", k, v, in.Metadata[k])
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	img.Set(3, 3, color.RGBA{255, 0, 0, 255})
	pa, err := orig.Predict([]image.Image{img})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := m.Predict([]image.Image{img})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pa[0].Map {
		if math.Float32bits(pa[0].Map[i]) != math.Float32bits(pb[0].Map[i]) {
			t.Fatalf("map differs at %d: %v vs %v", i, pa[0].Map[i], pb[0].Map[i])
		}
	}
}

func TestSet_NotAModel_ErrFormat(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "models", "default", "demo.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"png":       []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
		"empty":     nil,
		"truncated": raw[:len(raw)/2],
		"text":      []byte("ir_version: 8\ngraph {}\n"),
	} {
		if _, err := onnxmeta.Set(b, map[string]string{"k": "v"}); !errors.Is(err, onnxmeta.ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte{0x08, 0x08, 0x3a, 0x00, 0x72, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var md map[string]string
		var err error
		// Metadata is copied out of the file: a few times its size at most, however it is nested.
		if n := testalloc.Bytes(func() { md, err = onnxmeta.Read(b) }); n > 8*uint64(len(b))+64<<10 {
			t.Fatalf("%d-byte file allocated %d bytes", len(b), n)
		}
		if err != nil {
			return
		}
		out, err := onnxmeta.Set(b, map[string]string{"rdre.x": "1"})
		if err != nil {
			t.Fatalf("Read accepted what Set refuses: %v", err)
		}
		_, had := md["rdre.x"]
		md2, err := onnxmeta.Read(out)
		if err != nil || md2["rdre.x"] != "1" || len(md2) != len(md)+boolInt(!had) {
			t.Fatalf("after Set: %v (%v), before %v", md2, err, md)
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
