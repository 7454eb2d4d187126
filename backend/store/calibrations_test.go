//go:build !js

package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/rdre-studio/studio/shared/protocol"
)

func TestStore_Calibration_LatestSurvivesReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ws.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LatestCalibration("abc"); ok || err != nil {
		t.Fatalf("a model without calibrations: ok %v err %v", ok, err)
	}
	for i, id := range []string{"20260101-000001-a", "20260102-000001-b"} {
		c := protocol.Calibration{ID: id, Model: "abc", Dataset: "ds", Split: protocol.SplitValidation, Images: 10 + i,
			Pixel: &protocol.CalibratedThreshold{Method: "mean-kstd:3", Threshold: 0.5 + float64(i), FPR: 0.001}}
		if err := s.PutCalibration(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCalibration(protocol.Calibration{ID: "x", Model: "other"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(p); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, ok, err := s.LatestCalibration("abc")
	if err != nil || !ok || c.ID != "20260102-000001-b" || c.Pixel == nil || c.Pixel.Threshold != 1.5 || c.Images != 11 {
		t.Fatalf("latest calibration: %+v ok %v err %v", c, ok, err)
	}
	all, err := s.Calibrations("abc")
	if err != nil || len(all) != 2 || all[0].ID != "20260101-000001-a" {
		t.Fatalf("calibrations: %+v %v", all, err)
	}
}

func TestStore_PutCalibration_BadKeys(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "ws.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []protocol.Calibration{{ID: "a"}, {Model: "m"}, {ID: "a\x00", Model: "m"}} {
		if err := s.PutCalibration(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("calibration %+v: %v, want ErrInvalid", c, err)
		}
	}
}
