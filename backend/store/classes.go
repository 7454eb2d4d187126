//go:build !js

package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	bolt "go.etcd.io/bbolt"

	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Class sources.
const (
	SourceDataset = "dataset"
	SourceUser    = "user"
)

// MaxClassName bounds a class name in runes.
const MaxClassName = 64

// palette colours classes by index: distinct hues that stay readable as a translucent overlay on grey
// industrial images (no greys, no near-blacks).
var palette = []string{
	"#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
	"#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
}

// kRetired is the key, in a dataset's classes bucket, of the indices of deleted classes (one byte
// each). Class keys are one byte long, so it cannot collide with one.
var kRetired = []byte("retired")

// PaletteColor is the default colour of class index i (1-based).
func PaletteColor(i int) string { return palette[(i-1+len(palette))%len(palette)] }

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// validClassName trims name and checks it: 1..MaxClassName printable runes, not "good" (good is the
// absence of a defect, i.e. background, never a class).
func validClassName(name string) (string, error) {
	name = strings.TrimSpace(name)
	n := 0
	for _, r := range name {
		n++
		if !unicode.IsPrint(r) {
			return "", fmt.Errorf("%w: class name %q contains a non-printable character", ErrInvalid, name)
		}
	}
	if n == 0 || n > MaxClassName {
		return "", fmt.Errorf("%w: class name must have 1 to %d characters, has %d", ErrInvalid, MaxClassName, n)
	}
	if strings.EqualFold(name, protocol.KindGood) {
		return "", fmt.Errorf("%w: %q is the defect-free kind, not a class", ErrInvalid, name)
	}
	return name, nil
}

// Classes lists a dataset's label classes by index; a dataset without classes gives an empty list.
func (s *Store) Classes(datasetID string) ([]protocol.LabelClass, error) {
	var out []protocol.LabelClass
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = classesTx(tx, datasetID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("classes of %s: %w", datasetID, err)
	}
	return out, nil
}

func classesTx(tx *bolt.Tx, datasetID string) ([]protocol.LabelClass, error) {
	out := []protocol.LabelClass{}
	b := tx.Bucket(bClasses).Bucket([]byte(datasetID))
	if b == nil {
		return out, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 1 {
			return nil // kRetired
		}
		var c protocol.LabelClass
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("class %d: %w", k[0], err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// addClassTx stores a new class at the lowest free index.
func addClassTx(tx *bolt.Tx, datasetID, name, color, source string) (protocol.LabelClass, error) {
	b, err := tx.Bucket(bClasses).CreateBucketIfNotExists([]byte(datasetID))
	if err != nil {
		return protocol.LabelClass{}, err
	}
	// An index a deleted class had is taken only when no other is free: old mask versions in the
	// history still hold its pixels, and a revert must not paint them in a new class.
	retired := b.Get(kRetired)
	idx := 0
	for pass := 0; pass < 2 && idx == 0; pass++ {
		for i := 1; i <= 255; i++ {
			if b.Get([]byte{byte(i)}) == nil && (pass == 1 || !bytes.Contains(retired, []byte{byte(i)})) {
				idx = i
				break
			}
		}
	}
	if idx == 0 {
		return protocol.LabelClass{}, fmt.Errorf("%w: dataset %s already has 255 classes", ErrInvalid, datasetID)
	}
	if color == "" {
		color = PaletteColor(idx)
	}
	c := protocol.LabelClass{Index: idx, Name: name, Color: strings.ToLower(color), Source: source}
	raw, err := json.Marshal(c)
	if err != nil {
		return protocol.LabelClass{}, err
	}
	return c, b.Put([]byte{byte(idx)}, raw)
}

// CreateClass adds a user class. The name is trimmed and must be new in the dataset (case-insensitive);
// color is "#rrggbb" (stored lower case) or empty for the palette colour of its index.
func (s *Store) CreateClass(datasetID, name, color string) (protocol.LabelClass, error) {
	if err := checkKey("dataset id", datasetID); err != nil {
		return protocol.LabelClass{}, err
	}
	name, err := validClassName(name)
	if err != nil {
		return protocol.LabelClass{}, err
	}
	if color != "" && !colorRE.MatchString(color) {
		return protocol.LabelClass{}, fmt.Errorf("%w: colour %q is not #rrggbb", ErrInvalid, color)
	}
	var c protocol.LabelClass
	err = s.db.Update(func(tx *bolt.Tx) error {
		existing, err := classesTx(tx, datasetID)
		if err != nil {
			return err
		}
		for _, e := range existing {
			if strings.EqualFold(e.Name, name) {
				return fmt.Errorf("%w: dataset %s already has a class %q", ErrInvalid, datasetID, e.Name)
			}
		}
		c, err = addClassTx(tx, datasetID, name, color, SourceUser)
		return err
	})
	if err != nil {
		return protocol.LabelClass{}, fmt.Errorf("create class %q in %s: %w", name, datasetID, err)
	}
	return c, nil
}

// EnsureClasses makes every defect kind of a dataset a class (Source "dataset"), keeping the classes that
// exist: a kind already present keeps its index and colour, new kinds take the lowest free indices in the
// order given. Calling it again with the same kinds changes nothing, so indices stay stable across runs.
// "good" and empty names are skipped.
func (s *Store) EnsureClasses(datasetID string, kinds []string) error {
	if err := checkKey("dataset id", datasetID); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		existing, err := classesTx(tx, datasetID)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, e := range existing {
			// A renamed dataset class still stands for its folder.
			have[strings.ToLower(e.Name)] = true
			if e.Kind != "" {
				have[strings.ToLower(e.Kind)] = true
			}
		}
		for _, k := range kinds {
			name, err := validClassName(k)
			if err != nil {
				continue // "good" or an unusable folder name: not a class
			}
			if have[strings.ToLower(name)] {
				continue
			}
			if _, err := addClassTx(tx, datasetID, name, "", SourceDataset); err != nil {
				return err
			}
			have[strings.ToLower(name)] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure classes of %s: %w", datasetID, err)
	}
	return nil
}

// KindOf is the defect folder a class stands for: its Kind, or for a class without one its Name.
func KindOf(c protocol.LabelClass) string {
	if c.Kind != "" {
		return c.Kind
	}
	return c.Name
}

// UpdateClass renames and/or recolours a class; an empty name or colour keeps the current one. The new
// name must not be another class's (case-insensitive). The index, and so every saved mask, is unchanged.
// A class made from a defect folder keeps that folder as its Kind, so the dataset's ground truth and
// EnsureClasses still find it under its new name.
func (s *Store) UpdateClass(datasetID string, index int, name, color string) (protocol.LabelClass, error) {
	if err := checkKey("dataset id", datasetID); err != nil {
		return protocol.LabelClass{}, err
	}
	if index < 1 || index > 255 {
		return protocol.LabelClass{}, fmt.Errorf("update class %d in %s: %w: index must be 1..255", index, datasetID, ErrInvalid)
	}
	if name != "" {
		var err error
		if name, err = validClassName(name); err != nil {
			return protocol.LabelClass{}, fmt.Errorf("update class %d in %s: %w", index, datasetID, err)
		}
	}
	if color != "" && !colorRE.MatchString(color) {
		return protocol.LabelClass{}, fmt.Errorf("update class %d in %s: %w: colour %q is not #rrggbb", index, datasetID, ErrInvalid, color)
	}
	var c protocol.LabelClass
	err := s.db.Update(func(tx *bolt.Tx) error {
		existing, err := classesTx(tx, datasetID)
		if err != nil {
			return err
		}
		found := false
		for _, e := range existing {
			if e.Index == index {
				c, found = e, true
			} else if name != "" && strings.EqualFold(e.Name, name) {
				return fmt.Errorf("%w: dataset %s already has a class %q", ErrInvalid, datasetID, e.Name)
			}
		}
		if !found {
			return fmt.Errorf("class %d: %w", index, ErrNotFound)
		}
		if c.Source == SourceDataset && c.Kind == "" {
			c.Kind = c.Name
		}
		if name != "" {
			c.Name = name
		}
		if color != "" {
			c.Color = strings.ToLower(color)
		}
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return tx.Bucket(bClasses).Bucket([]byte(datasetID)).Put([]byte{byte(index)}, raw)
	})
	if err != nil {
		return protocol.LabelClass{}, fmt.Errorf("update class %d in %s: %w", index, datasetID, err)
	}
	return c, nil
}

// MaskChange is a new mask version that DeleteClass stored.
type MaskChange struct {
	Image   string
	Version int
	Empty   bool
	Review  *protocol.Review // the image's new review state when it changed
}

// DeleteClass removes a user class and turns its pixels into background: every image whose newest
// workspace mask has pixels of the class gets a new version without them (its review state following
// as for any save). Older versions keep the pixels in the history; the class's index is retired, so a
// new class takes it only when no other index is free. All of it is one transaction. Classes made from
// a dataset's defect folders are refused (ErrInvalid): the dataset's ground truth is drawn in them and
// the next start would bring them back.
func (s *Store) DeleteClass(datasetID string, index int) ([]MaskChange, error) {
	if index < 1 || index > 255 {
		return nil, fmt.Errorf("delete class %d in %s: %w: index must be 1..255", index, datasetID, ErrInvalid)
	}
	var changes []MaskChange
	err := s.db.Update(func(tx *bolt.Tx) error {
		cb := tx.Bucket(bClasses).Bucket([]byte(datasetID))
		var raw []byte
		if cb != nil {
			raw = cb.Get([]byte{byte(index)})
		}
		if raw == nil {
			return fmt.Errorf("class %d: %w", index, ErrNotFound)
		}
		var c protocol.LabelClass
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("class %d: %w", index, err)
		}
		if c.Source == SourceDataset {
			return fmt.Errorf("%w: class %q is the dataset's defect folder %q and its ground truth uses it; rename, recolour or hide it instead", ErrInvalid, c.Name, KindOf(c))
		}
		if err := cb.Delete([]byte{byte(index)}); err != nil {
			return err
		}
		retired := append([]byte(nil), cb.Get(kRetired)...)
		if !bytes.Contains(retired, []byte{byte(index)}) {
			if err := cb.Put(kRetired, append(retired, byte(index))); err != nil {
				return err
			}
		}
		ds := tx.Bucket(bMasks).Bucket([]byte(datasetID))
		if ds == nil {
			return nil
		}
		var imgs [][]byte
		if err := ds.ForEachBucket(func(img []byte) error {
			imgs = append(imgs, append([]byte(nil), img...))
			return nil
		}); err != nil {
			return err
		}
		now := time.Now()
		for _, img := range imgs {
			b := ds.Bucket(img)
			k, v := b.Cursor().Last()
			if k == nil {
				continue
			}
			ri, err := decodeMaskHeader(v)
			if err != nil {
				return fmt.Errorf("image %s: %w", img, err)
			}
			if ri.Pixels == 0 {
				continue
			}
			m, err := mask.Decode(ri.body)
			if err != nil {
				return fmt.Errorf("image %s: %w", img, err)
			}
			hit := false
			for i, p := range m.Pix {
				if p == byte(index) {
					m.Pix[i], hit = 0, true
				}
			}
			if !hit {
				continue
			}
			nv, err := putVersion(b, encodeMaskRecord(m, now))
			if err != nil {
				return fmt.Errorf("image %s: %w", img, err)
			}
			n := m.Count()
			r, err := deriveReviewTx(tx, datasetID, string(img), nv, n, now)
			if err != nil {
				return fmt.Errorf("image %s: %w", img, err)
			}
			changes = append(changes, MaskChange{Image: string(img), Version: nv, Empty: n == 0, Review: r})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete class %d in %s: %w", index, datasetID, err)
	}
	return changes, nil
}
