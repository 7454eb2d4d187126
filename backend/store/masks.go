//go:build !js

package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Mask record formats: 1 = format byte, int64 BE unix nanoseconds, u32 BE defect pixel count, RLE;
// 2 = the same plus one byte after the count: the majority class (the class index with most pixels, ties
// to the lower index; 0 when empty). Format 1 records (written by early builds) are still read, with
// majority class 0 meaning unknown.
const maskRecordFormat = 2

func headerLen(format byte) int {
	switch format {
	case 1:
		return 1 + 8 + 4
	case 2:
		return 1 + 8 + 4 + 1
	}
	return -1
}

func encodeMaskRecord(m *mask.Label, at time.Time) []byte {
	rle := m.Encode()
	n := headerLen(maskRecordFormat)
	out := make([]byte, n, n+len(rle))
	out[0] = maskRecordFormat
	binary.BigEndian.PutUint64(out[1:9], uint64(at.UnixNano()))
	var count [256]int
	for _, v := range m.Pix {
		count[v]++
	}
	pixels, major := len(m.Pix)-count[0], 0
	for i := 1; i < 256; i++ {
		if count[i] > 0 && (major == 0 || count[i] > count[major]) {
			major = i
		}
	}
	binary.BigEndian.PutUint32(out[9:13], uint32(pixels))
	out[13] = byte(major)
	return append(out, rle...)
}

// recordInfo is the header of a mask record.
type recordInfo struct {
	protocol.MaskVersion
	Class int // majority class, 0 when empty or unknown
	body  []byte
}

func decodeMaskHeader(raw []byte) (recordInfo, error) {
	n := -1
	if len(raw) > 0 {
		n = headerLen(raw[0])
	}
	if n < 0 || len(raw) < n {
		return recordInfo{}, fmt.Errorf("mask record of %d bytes with format %d: damaged or from a newer build", len(raw), firstByte(raw))
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(raw[1:9]))).UTC()
	ri := recordInfo{
		MaskVersion: protocol.MaskVersion{SavedAt: at.Format(time.RFC3339Nano), Pixels: int(binary.BigEndian.Uint32(raw[9:13]))},
		body:        raw[n:],
	}
	if n > 13 {
		ri.Class = int(raw[13])
	}
	return ri, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func checkMask(m *mask.Label) error {
	if m == nil {
		return fmt.Errorf("%w: nil mask", ErrInvalid)
	}
	if m.W <= 0 || m.H <= 0 || m.W > mask.MaxSide || m.H > mask.MaxSide || len(m.Pix) != m.W*m.H {
		return fmt.Errorf("%w: mask %dx%d with %d pixels", ErrInvalid, m.W, m.H, len(m.Pix))
	}
	return nil
}

// imageBucket returns masks/<datasetID>/<imageID>, creating it when create is set (nil when absent).
func imageBucket(tx *bolt.Tx, datasetID, imageID string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bMasks)
	if !create {
		ds := root.Bucket([]byte(datasetID))
		if ds == nil {
			return nil, nil
		}
		return ds.Bucket([]byte(imageID)), nil
	}
	ds, err := root.CreateBucketIfNotExists([]byte(datasetID))
	if err != nil {
		return nil, err
	}
	return ds.CreateBucketIfNotExists([]byte(imageID))
}

func putVersion(b *bolt.Bucket, rec []byte) (int, error) {
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	if seq > math.MaxUint32 {
		return 0, fmt.Errorf("mask version %d overflows", seq)
	}
	if err := b.Put(u32(uint32(seq)), rec); err != nil {
		return 0, err
	}
	return int(seq), nil
}

// SaveMask stores m as the newest version of the image's mask and returns its version (1, 2, ...). An
// all-background mask is a version too: it records that the user cleared the image (it is good again).
// The image's review state follows the mask (see SaveMaskReview). The write is durable when SaveMask
// returns.
func (s *Store) SaveMask(datasetID, imageID string, m *mask.Label) (version int, err error) {
	version, _, err = s.SaveMaskReview(datasetID, imageID, m)
	return version, err
}

// SaveMaskReview is SaveMask that also returns the image's new review when the save changed it (nil
// otherwise): defect pixels make it labelled, an empty mask over labelled makes it unlabelled. Mask and
// review are written in one transaction.
func (s *Store) SaveMaskReview(datasetID, imageID string, m *mask.Label) (version int, review *protocol.Review, err error) {
	if err := checkKey("dataset id", datasetID); err != nil {
		return 0, nil, err
	}
	if err := checkKey("image id", imageID); err != nil {
		return 0, nil, err
	}
	if err := checkMask(m); err != nil {
		return 0, nil, err
	}
	now := time.Now()
	rec := encodeMaskRecord(m, now)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := imageBucket(tx, datasetID, imageID, true)
		if err != nil {
			return err
		}
		if version, err = putVersion(b, rec); err != nil {
			return err
		}
		review, err = deriveReviewTx(tx, datasetID, imageID, version, m.Count(), now)
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("save mask of %s in %s: %w", imageID, datasetID, err)
	}
	return version, review, nil
}

// Mask returns a version of the image's mask (0 = the newest) and that version's number. It fails with
// ErrNotFound when the image has no such version.
func (s *Store) Mask(datasetID, imageID string, version int) (*mask.Label, int, error) {
	if version < 0 || version > math.MaxUint32 {
		return nil, 0, fmt.Errorf("mask of %s version %d: %w", imageID, version, ErrInvalid)
	}
	var m *mask.Label
	err := s.db.View(func(tx *bolt.Tx) error {
		b, _ := imageBucket(tx, datasetID, imageID, false)
		if b == nil {
			return ErrNotFound
		}
		var k, raw []byte
		if version == 0 {
			k, raw = b.Cursor().Last()
		} else {
			k, raw = u32(uint32(version)), b.Get(u32(uint32(version)))
		}
		if raw == nil {
			return ErrNotFound
		}
		ri, err := decodeMaskHeader(raw)
		if err != nil {
			return err
		}
		if m, err = mask.Decode(ri.body); err != nil {
			return err
		}
		version = int(binary.BigEndian.Uint32(k))
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			if version == 0 {
				return nil, 0, fmt.Errorf("mask of %s in %s: %w", imageID, datasetID, ErrNotFound)
			}
			return nil, 0, fmt.Errorf("mask of %s in %s, version %d: %w", imageID, datasetID, version, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("read mask of %s in %s: %w", imageID, datasetID, err)
	}
	return m, version, nil
}

// MaskVersions lists every stored version of the image's mask, oldest first; none gives an empty list.
func (s *Store) MaskVersions(datasetID, imageID string) ([]protocol.MaskVersion, error) {
	out := []protocol.MaskVersion{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, _ := imageBucket(tx, datasetID, imageID, false)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			ri, err := decodeMaskHeader(v)
			if err != nil {
				return fmt.Errorf("version %d: %w", binary.BigEndian.Uint32(k), err)
			}
			ri.Version = int(binary.BigEndian.Uint32(k))
			out = append(out, ri.MaskVersion)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mask history of %s in %s: %w", imageID, datasetID, err)
	}
	return out, nil
}

// RevertMask stores a copy of an earlier version as the newest one and returns the new version number.
func (s *Store) RevertMask(datasetID, imageID string, version int) (int, error) {
	nv, _, err := s.RevertMaskReview(datasetID, imageID, version)
	return nv, err
}

// RevertMaskReview is RevertMask that also returns the image's new review state when the revert
// changed it, like SaveMaskReview.
func (s *Store) RevertMaskReview(datasetID, imageID string, version int) (int, *protocol.Review, error) {
	if version <= 0 || version > math.MaxUint32 {
		return 0, nil, fmt.Errorf("revert mask of %s to version %d: %w", imageID, version, ErrInvalid)
	}
	var nv int
	var review *protocol.Review
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, _ := imageBucket(tx, datasetID, imageID, false)
		if b == nil {
			return ErrNotFound
		}
		raw := b.Get(u32(uint32(version)))
		if raw == nil {
			return ErrNotFound
		}
		ri, err := decodeMaskHeader(raw)
		if err != nil {
			return fmt.Errorf("version %d: %w", version, err)
		}
		m, err := mask.Decode(ri.body)
		if err != nil {
			return fmt.Errorf("version %d: %w", version, err)
		}
		now := time.Now()
		if nv, err = putVersion(b, encodeMaskRecord(m, now)); err != nil {
			return err
		}
		review, err = deriveReviewTx(tx, datasetID, imageID, nv, m.Count(), now)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return 0, nil, fmt.Errorf("revert mask of %s in %s to version %d: %w", imageID, datasetID, version, ErrNotFound)
		}
		return 0, nil, fmt.Errorf("revert mask of %s in %s to version %d: %w", imageID, datasetID, version, err)
	}
	return nv, review, nil
}

// MaskSummary describes the newest workspace version of one image's mask without decoding it.
type MaskSummary struct {
	Version int
	Pixels  int // defect pixels; 0 means the user cleared the image (it is good)
	Class   int // the class index holding most defect pixels (ties: lower index); 0 when empty
}

// MaskedImages maps every image of the dataset that has a workspace mask to its newest version. Images
// whose newest version is empty (cleared) are included: their empty workspace mask overrides the
// dataset's own. MaskSummaries says which are empty and which class dominates the others.
func (s *Store) MaskedImages(datasetID string) (map[string]int, error) {
	sums, err := s.MaskSummaries(datasetID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(sums))
	for img, sm := range sums {
		out[img] = sm.Version
	}
	return out, nil
}

// MaskSummaries maps every image of the dataset that has a workspace mask to a summary of its newest
// version, read from the record headers only: cheap enough for every image list. With it a server can
// tell the effective kind of an image: good when Pixels is 0, else the dataset's defect kind, or for an
// image that was good in the dataset the name of class Class.
func (s *Store) MaskSummaries(datasetID string) (map[string]MaskSummary, error) {
	out := map[string]MaskSummary{}
	err := s.db.View(func(tx *bolt.Tx) error {
		ds := tx.Bucket(bMasks).Bucket([]byte(datasetID))
		if ds == nil {
			return nil
		}
		return ds.ForEachBucket(func(img []byte) error {
			k, v := ds.Bucket(img).Cursor().Last()
			if k == nil {
				return nil
			}
			ri, err := decodeMaskHeader(v)
			if err != nil {
				return fmt.Errorf("image %s: %w", img, err)
			}
			out[string(img)] = MaskSummary{Version: int(binary.BigEndian.Uint32(k)), Pixels: ri.Pixels, Class: ri.Class}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("masked images of %s: %w", datasetID, err)
	}
	return out, nil
}

// SaveMasks stores one new version for each image of masks in a single transaction (all or nothing, one
// fsync), for imports. Review states follow the masks as in SaveMaskReview. It returns each image's new version.
func (s *Store) SaveMasks(datasetID string, masks map[string]*mask.Label) (map[string]int, error) {
	if err := checkKey("dataset id", datasetID); err != nil {
		return nil, err
	}
	for img, m := range masks {
		if err := checkKey("image id", img); err != nil {
			return nil, err
		}
		if err := checkMask(m); err != nil {
			return nil, fmt.Errorf("mask of %s: %w", img, err)
		}
	}
	now := time.Now()
	out := make(map[string]int, len(masks))
	err := s.db.Update(func(tx *bolt.Tx) error {
		for img, m := range masks {
			b, err := imageBucket(tx, datasetID, img, true)
			if err != nil {
				return err
			}
			v, err := putVersion(b, encodeMaskRecord(m, now))
			if err != nil {
				return fmt.Errorf("mask of %s: %w", img, err)
			}
			if _, err := deriveReviewTx(tx, datasetID, img, v, m.Count(), now); err != nil {
				return fmt.Errorf("review of %s: %w", img, err)
			}
			out[img] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("save %d masks in %s: %w", len(masks), datasetID, err)
	}
	return out, nil
}
