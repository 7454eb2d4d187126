//go:build !js

package store

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	bolt "go.etcd.io/bbolt"

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
	idx := 0
	for i := 1; i <= 255; i++ {
		if b.Get([]byte{byte(i)}) == nil {
			idx = i
			break
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
			have[strings.ToLower(e.Name)] = true
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
