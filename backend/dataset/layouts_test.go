//go:build !js

package dataset

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/dataset/datasettest"
)

// TestOpen_EveryLayout_FindsFixture opens the generated fixture of every layout and checks the image list,
// keys, labels, mask files, the defect pixels of each mask encoding and the warnings about unpaired files.
func TestOpen_EveryLayout_FindsFixture(t *testing.T) {
	for _, layout := range datasettest.Layouts() {
		t.Run(layout, func(t *testing.T) {
			fx, err := datasettest.Write(t.TempDir(), layout)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Open(fx.Root)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if got := d.Info().Layout; got != fx.Layout {
				t.Errorf("layout %q, want %q", got, fx.Layout)
			}
			checkFixture(t, d, fx)
		})
	}
}

func checkFixture(t *testing.T, d *Dataset, fx datasettest.Fixture) {
	t.Helper()
	var got []datasettest.Image
	for _, im := range d.Images() {
		gi := datasettest.Image{ID: im.ID, Key: im.Key, Category: im.Category, Split: im.Split, Kind: im.Kind, Masks: d.MaskFiles(im.ID)}
		tr, err := d.Truth(im.ID)
		if err != nil {
			t.Errorf("truth of %s: %v", im.ID, err)
			continue
		}
		for _, v := range tr.Mask {
			if v {
				gi.DefectPixels++
			}
		}
		if len(tr.Files) > 1 && len(tr.Parts) != len(tr.Files) {
			t.Errorf("%s: %d mask files but %d parts", im.ID, len(tr.Files), len(tr.Parts))
		}
		if im.Width != datasettest.Size || im.Height != datasettest.Size {
			t.Errorf("%s: size %dx%d", im.ID, im.Width, im.Height)
		}
		got = append(got, gi)
	}
	if !reflect.DeepEqual(got, fx.Images) {
		t.Errorf("index differs from the fixture:")
		for i := 0; i < max(len(got), len(fx.Images)); i++ {
			var g, w datasettest.Image
			if i < len(got) {
				g = got[i]
			}
			if i < len(fx.Images) {
				w = fx.Images[i]
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("  got  %+v\n  want %+v", g, w)
			}
		}
	}
	warnings := strings.Join(d.Info().Warnings, "\n")
	for _, e := range fx.Extra {
		if strings.Contains(warnings, e) {
			continue
		}
		// An image without its mask is reported by Truth, when it is read.
		tr, err := d.Truth(e)
		if err != nil || !strings.Contains(strings.Join(tr.Warnings, "\n"), e) {
			t.Errorf("no warning names %s (index warnings: %q, truth: %v %v)", e, warnings, tr.Warnings, err)
		}
	}
}

// TestOpenWith_ForcedLayout_ReadsAmbiguousFolder: a folder with good/ next to MVTec categories reads as
// categories by default (with a warning) and as a plain folder when forced.
func TestOpenWith_ForcedLayout_ReadsAmbiguousFolder(t *testing.T) {
	dir := t.TempDir()
	fx, err := datasettest.Write(dir, "mvtec-set")
	if err != nil {
		t.Fatal(err)
	}
	writePNG(t, fx.Root+"/good/000.png", 4, 4, flat(0))
	d, err := Open(fx.Root)
	if err != nil {
		t.Fatal(err)
	}
	if d.Info().Layout != "mvtec" || !strings.Contains(strings.Join(d.Info().Warnings, " "), "--layout plain") {
		t.Fatalf("default: layout %s warnings %v", d.Info().Layout, d.Info().Warnings)
	}
	d.Close()
	d, err = OpenWith(fx.Root, Options{Layout: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Info().Layout != "plain" {
		t.Fatalf("forced: layout %s", d.Info().Layout)
	}
	if _, ok := d.Image("good/000.png"); !ok {
		t.Fatalf("forced plain layout lacks good/000.png: %v", d.Images())
	}
	if _, err := OpenWith(fx.Root, Options{Layout: "nope"}); err == nil || !strings.Contains(err.Error(), "mvtec2") {
		t.Fatalf("unknown layout: %v", err)
	}
}
