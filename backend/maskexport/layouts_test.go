//go:build !js

package maskexport

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rdre-studio/studio/backend/dataset/datasettest"
	"github.com/rdre-studio/studio/backend/store"
)

// TestExportImport_EveryLayout_SameMasks: the dataset masks of every generated layout (each another mask
// encoding) export as MVTec 0/255 masks, and importing that export into a fresh workspace gives every
// image the same defect pixels the dataset layer reads.
func TestExportImport_EveryLayout_SameMasks(t *testing.T) {
	for _, layout := range datasettest.Layouts() {
		t.Run(layout, func(t *testing.T) {
			fx, err := datasettest.Write(t.TempDir(), layout)
			if err != nil {
				t.Fatal(err)
			}
			ds, st := openAll(t, fx.Root)
			want := map[string]int{}
			for _, im := range fx.Images {
				if im.DefectPixels > 0 {
					want[im.ID] = im.DefectPixels
				}
			}
			out := filepath.Join(t.TempDir(), "out")
			sum, err := ExportMVTec(ds, st, out, Options{MasksOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if sum.DatasetMasks != len(want) {
				t.Fatalf("exported %d dataset masks, want %d", sum.DatasetMasks, len(want))
			}
			st2, err := store.Open(filepath.Join(t.TempDir(), "ws2.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st2.Close()
			cats, err := os.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			imported := 0
			for _, c := range cats {
				gt := filepath.Join(out, c.Name(), "ground_truth")
				if _, err := os.Stat(gt); err != nil {
					continue
				}
				s, err := ImportMVTec(ds, st2, gt)
				if err != nil {
					t.Fatalf("import %s: %v", gt, err)
				}
				imported += s.Masks
			}
			if imported != len(want) {
				t.Fatalf("imported %d masks, want %d", imported, len(want))
			}
			for id, n := range want {
				m, _, err := st2.Mask(ds.Info().ID, id, 0)
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				if m.Count() != n {
					t.Errorf("%s: %d defect pixels after export and import, want %d", id, m.Count(), n)
				}
			}
		})
	}
}
