//go:build !js

package store

import (
	"errors"
	"testing"

	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

// square returns a 16x16 mask with a 4x4 square of class cls (0: an empty mask).
func square(t *testing.T, cls uint8) *mask.Label {
	t.Helper()
	m, err := mask.New(16, 16)
	if err != nil {
		t.Fatal(err)
	}
	for y := 4; y < 8; y++ {
		for x := 4; x < 8; x++ {
			m.Pix[y*16+x] = cls
		}
	}
	return m
}

func wantState(t *testing.T, s *Store, ds, img, want string) {
	t.Helper()
	r, err := s.Review(ds, img)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != want {
		t.Fatalf("review of %s: %q, want %q", img, r.State, want)
	}
}

func TestStore_Review_UnlabelledWithoutRecord(t *testing.T) {
	s, _ := openTemp(t)
	wantState(t, s, "ds", "a.png", protocol.ReviewUnlabelled)
	all, err := s.Reviews("ds")
	if err != nil || len(all) != 0 {
		t.Fatalf("reviews of an untouched dataset: %v %v", all, err)
	}
}

func TestStore_Review_DerivedFromMaskSaves(t *testing.T) {
	s, _ := openTemp(t)
	v, r, err := s.SaveMaskReview("ds", "a.png", square(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if r == nil || r.State != protocol.ReviewLabelled || r.By != protocol.ReviewByMask || r.MaskVersion != v {
		t.Fatalf("a mask with defect pixels gave review %+v", r)
	}
	// Saving again with pixels changes nothing.
	if _, r, err = s.SaveMaskReview("ds", "a.png", square(t, 2)); err != nil || r != nil {
		t.Fatalf("second labelled save: review %+v, %v", r, err)
	}
	// Clearing the mask: the defect is gone but nobody said the image is fine.
	if _, r, err = s.SaveMaskReview("ds", "a.png", square(t, 0)); err != nil || r == nil || r.State != protocol.ReviewUnlabelled {
		t.Fatalf("empty save over labelled: review %+v, %v", r, err)
	}
	wantState(t, s, "ds", "a.png", protocol.ReviewUnlabelled)
	// An empty save of an untouched image leaves it unlabelled.
	if _, r, err = s.SaveMaskReview("ds", "b.png", square(t, 0)); err != nil || r != nil {
		t.Fatalf("empty save of an unlabelled image: review %+v, %v", r, err)
	}
	// Revert to the first version: labelled again.
	if _, r, err = s.RevertMaskReview("ds", "a.png", v); err != nil || r == nil || r.State != protocol.ReviewLabelled {
		t.Fatalf("revert to a labelled version: review %+v, %v", r, err)
	}
}

func TestStore_Review_NoDefectThenMask(t *testing.T) {
	s, p := openTemp(t)
	r, changed, err := s.SetReview("ds", "a.png", protocol.ReviewNoDefect)
	if err != nil || !changed || r.State != protocol.ReviewNoDefect || r.By != protocol.ReviewByUser {
		t.Fatalf("set reviewed-no-defect: %+v %v %v", r, changed, err)
	}
	if _, changed, err = s.SetReview("ds", "a.png", protocol.ReviewNoDefect); err != nil || changed {
		t.Fatalf("setting the same state again: changed %v, %v", changed, err)
	}
	// An empty save keeps the user's verdict.
	if _, r2, err := s.SaveMaskReview("ds", "a.png", square(t, 0)); err != nil || r2 != nil {
		t.Fatalf("empty save over reviewed-no-defect: %+v %v", r2, err)
	}
	wantState(t, s, "ds", "a.png", protocol.ReviewNoDefect)
	// Defect pixels win over the verdict.
	if _, r2, err := s.SaveMaskReview("ds", "a.png", square(t, 1)); err != nil || r2 == nil || r2.State != protocol.ReviewLabelled {
		t.Fatalf("non-empty save over reviewed-no-defect: %+v %v", r2, err)
	}
	// It survives a reopen.
	s.Close()
	s2, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	wantState(t, s2, "ds", "a.png", protocol.ReviewLabelled)
}

func TestStore_Review_NoDefectRefusedWithPixels(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.SaveMask("ds", "a.png", square(t, 1)); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.SetReview("ds", "a.png", protocol.ReviewNoDefect)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("reviewed-no-defect over a mask with pixels: %v, want ErrInvalid", err)
	}
	wantState(t, s, "ds", "a.png", protocol.ReviewLabelled)
	// After clearing, the verdict is accepted.
	if _, err := s.SaveMask("ds", "a.png", square(t, 0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetReview("ds", "a.png", protocol.ReviewNoDefect); err != nil {
		t.Fatal(err)
	}
}

func TestStore_Review_BadInput(t *testing.T) {
	s, _ := openTemp(t)
	for _, c := range []struct{ ds, img, state string }{
		{"ds", "a.png", "done"}, {"", "a.png", protocol.ReviewLabelled}, {"ds", "", protocol.ReviewLabelled},
	} {
		if _, _, err := s.SetReview(c.ds, c.img, c.state); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetReview(%q, %q, %q): %v, want ErrInvalid", c.ds, c.img, c.state, err)
		}
	}
}

func TestStore_Review_Counts(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.SaveMask("ds", "a.png", square(t, 1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetReview("ds", "b.png", protocol.ReviewNoDefect); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetReview("ds", "gone.png", protocol.ReviewNoDefect); err != nil {
		t.Fatal(err)
	}
	// Setting unlabelled removes the record.
	if _, _, err := s.SetReview("ds", "c.png", protocol.ReviewLabelled); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetReview("ds", "c.png", protocol.ReviewUnlabelled); err != nil {
		t.Fatal(err)
	}
	c, err := s.ReviewCounts("ds", []string{"a.png", "b.png", "c.png", "d.png"})
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.ReviewCounts{Dataset: "ds", Images: 4, Labelled: 1, NoDefect: 1, Unlabelled: 2}
	if c != want {
		t.Fatalf("counts %+v, want %+v (an image no longer in the dataset must not count)", c, want)
	}
	all, err := s.Reviews("ds")
	if err != nil || len(all) != 3 {
		t.Fatalf("stored reviews %v %v, want a.png, b.png and gone.png", all, err)
	}
}

func TestStore_Review_ImportDerives(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.SaveMasks("ds", map[string]*mask.Label{"a.png": square(t, 1), "b.png": square(t, 0)}); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "ds", "a.png", protocol.ReviewLabelled)
	wantState(t, s, "ds", "b.png", protocol.ReviewUnlabelled)
}

func TestStore_UpdateClass_RenameRecolour(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.EnsureClasses("ds", []string{"scratch", "dent"}); err != nil {
		t.Fatal(err)
	}
	c, err := s.UpdateClass("ds", 1, "  long scratch ", "#00FF00")
	if err != nil {
		t.Fatal(err)
	}
	if c.Index != 1 || c.Name != "long scratch" || c.Color != "#00ff00" || c.Kind != "scratch" {
		t.Fatalf("updated class %+v", c)
	}
	// Renamed dataset classes are still their folder's: no duplicate on the next start.
	if err := s.EnsureClasses("ds", []string{"scratch", "dent"}); err != nil {
		t.Fatal(err)
	}
	cls, _ := s.Classes("ds")
	if len(cls) != 2 {
		t.Fatalf("classes after rename and EnsureClasses: %+v", cls)
	}
	// Colour only.
	if c, err = s.UpdateClass("ds", 2, "", "#123456"); err != nil || c.Name != "dent" || c.Color != "#123456" {
		t.Fatalf("recolour: %+v %v", c, err)
	}
	// Renaming to itself in another case is allowed.
	if _, err := s.UpdateClass("ds", 2, "Dent", ""); err != nil {
		t.Fatal(err)
	}
}

func TestStore_UpdateClass_Refused(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.EnsureClasses("ds", []string{"scratch", "dent"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		idx         int
		name, color string
		want        error
	}{
		{2, "SCRATCH", "", ErrInvalid}, // another class's name
		{2, "good", "", ErrInvalid},
		{2, "", "red", ErrInvalid},
		{0, "x", "", ErrInvalid},
		{9, "x", "", ErrNotFound},
	} {
		if _, err := s.UpdateClass("ds", c.idx, c.name, c.color); !errors.Is(err, c.want) {
			t.Errorf("UpdateClass(%d, %q, %q): %v, want %v", c.idx, c.name, c.color, err, c.want)
		}
	}
	cls, _ := s.Classes("ds")
	if cls[1].Name != "dent" {
		t.Fatalf("a refused update changed the class: %+v", cls[1])
	}
}

func TestStore_DeleteClass_PixelsBecomeBackground(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.EnsureClasses("ds", []string{"scratch"}); err != nil {
		t.Fatal(err)
	}
	smudge, err := s.CreateClass("ds", "smudge", "")
	if err != nil {
		t.Fatal(err)
	}
	both := square(t, 1)
	both.Pix[0] = uint8(smudge.Index)
	only := square(t, uint8(smudge.Index))
	if _, err := s.SaveMask("ds", "both.png", both); err != nil {
		t.Fatal(err)
	}
	v1, err := s.SaveMask("ds", "only.png", only)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveMask("ds", "none.png", square(t, 1)); err != nil {
		t.Fatal(err)
	}
	changes, err := s.DeleteClass("ds", smudge.Index)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 {
		t.Fatalf("changes %+v, want both.png and only.png", changes)
	}
	m, _, _ := s.Mask("ds", "both.png", 0)
	if m.Pix[0] != 0 || m.Count() != 16 {
		t.Fatalf("both.png after the delete: pixel 0 = %d, %d defect pixels", m.Pix[0], m.Count())
	}
	m, v, _ := s.Mask("ds", "only.png", 0)
	if m.Count() != 0 || v != v1+1 {
		t.Fatalf("only.png after the delete: %d pixels, version %d", m.Count(), v)
	}
	// The only defect is gone: the image needs work again.
	wantState(t, s, "ds", "only.png", protocol.ReviewUnlabelled)
	// History keeps the old pixels.
	if old, _, _ := s.Mask("ds", "only.png", v1); old.Count() != 16 {
		t.Fatal("the delete rewrote history")
	}
	if cls, _ := s.Classes("ds"); len(cls) != 1 {
		t.Fatalf("classes after delete %+v", cls)
	}
	// A new class does not take the retired index while others are free.
	c, err := s.CreateClass("ds", "stain", "")
	if err != nil || c.Index == smudge.Index {
		t.Fatalf("new class after delete: %+v %v (retired index %d)", c, err, smudge.Index)
	}
}

func TestStore_DeleteClass_Refused(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.EnsureClasses("ds", []string{"scratch"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteClass("ds", 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deleting a dataset class: %v, want ErrInvalid", err)
	}
	if _, err := s.DeleteClass("ds", 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a missing class: %v, want ErrNotFound", err)
	}
}
