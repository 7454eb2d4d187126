//go:build !js

package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rdre-studio/studio/shared/protocol"
)

// Review states follow the rules written down at protocol.ReviewUnlabelled. The derived ones are
// applied inside the transaction that stores the mask, so a state and the mask it was derived from
// are never out of step, not even after a kill -9.

// reviewBucket returns reviews/<datasetID>, creating it when create is set (nil when absent).
func reviewBucket(tx *bolt.Tx, datasetID string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bReviews)
	if !create {
		return root.Bucket([]byte(datasetID)), nil
	}
	return root.CreateBucketIfNotExists([]byte(datasetID))
}

func reviewTx(tx *bolt.Tx, datasetID, imageID string) (protocol.Review, error) {
	r := protocol.Review{Dataset: datasetID, Image: imageID, State: protocol.ReviewUnlabelled}
	b, _ := reviewBucket(tx, datasetID, false)
	if b == nil {
		return r, nil
	}
	raw := b.Get([]byte(imageID))
	if raw == nil {
		return r, nil
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("review of %s: %w", imageID, err)
	}
	return r, nil
}

// putReviewTx stores r; the unlabelled state is stored as no record at all.
func putReviewTx(tx *bolt.Tx, r protocol.Review) error {
	if r.State == protocol.ReviewUnlabelled {
		b, _ := reviewBucket(tx, r.Dataset, false)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(r.Image))
	}
	b, err := reviewBucket(tx, r.Dataset, true)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(r.Image), raw)
}

// deriveReviewTx applies the mask-save rules after version (with pixels defect pixels) was stored. It
// returns the new review when the state changed, else nil.
func deriveReviewTx(tx *bolt.Tx, datasetID, imageID string, version, pixels int, at time.Time) (*protocol.Review, error) {
	cur, err := reviewTx(tx, datasetID, imageID)
	if err != nil {
		return nil, err
	}
	next := protocol.NextReviewState(cur.State, pixels > 0)
	if next == cur.State {
		return nil, nil
	}
	r := protocol.Review{Dataset: datasetID, Image: imageID, State: next, By: protocol.ReviewByMask,
		At: at.UTC().Format(time.RFC3339), MaskVersion: version}
	if err := putReviewTx(tx, r); err != nil {
		return nil, err
	}
	return &r, nil
}

// newestPixelsTx returns the defect pixel count of the newest workspace mask, -1 when there is none.
func newestPixelsTx(tx *bolt.Tx, datasetID, imageID string) (int, error) {
	b, _ := imageBucket(tx, datasetID, imageID, false)
	if b == nil {
		return -1, nil
	}
	_, raw := b.Cursor().Last()
	if raw == nil {
		return -1, nil
	}
	ri, err := decodeMaskHeader(raw)
	if err != nil {
		return 0, err
	}
	return ri.Pixels, nil
}

// Review returns the image's review; an image without a record is unlabelled.
func (s *Store) Review(datasetID, imageID string) (protocol.Review, error) {
	var r protocol.Review
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = reviewTx(tx, datasetID, imageID)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("review of %s in %s: %w", imageID, datasetID, err)
	}
	return r, nil
}

// Reviews maps every image of the dataset that has a stored review (any state but unlabelled) to it.
func (s *Store) Reviews(datasetID string) (map[string]protocol.Review, error) {
	out := map[string]protocol.Review{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, _ := reviewBucket(tx, datasetID, false)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r protocol.Review
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("review of %s: %w", k, err)
			}
			out[string(k)] = r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reviews of %s: %w", datasetID, err)
	}
	return out, nil
}

// SetReview stores a state a user chose. It refuses (ErrInvalid) ReviewNoDefect while the newest
// workspace mask has defect pixels, so that the state never contradicts the saved mask. changed is
// false when the image already had that state (nothing is written then).
func (s *Store) SetReview(datasetID, imageID, state string) (r protocol.Review, changed bool, err error) {
	if err := checkKey("dataset id", datasetID); err != nil {
		return r, false, err
	}
	if err := checkKey("image id", imageID); err != nil {
		return r, false, err
	}
	if !protocol.ValidReviewState(state) {
		return r, false, fmt.Errorf("%w: review state %q is not one of %v", ErrInvalid, state, protocol.ReviewStates)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		cur, err := reviewTx(tx, datasetID, imageID)
		if err != nil {
			return err
		}
		if state == protocol.ReviewNoDefect {
			px, err := newestPixelsTx(tx, datasetID, imageID)
			if err != nil {
				return err
			}
			if px > 0 {
				return fmt.Errorf("%w: the saved mask has %d defect pixels; clear the mask before marking the image reviewed, no defect", ErrInvalid, px)
			}
		}
		if cur.State == state {
			r = cur
			return nil
		}
		r = protocol.Review{Dataset: datasetID, Image: imageID, State: state, By: protocol.ReviewByUser, At: time.Now().UTC().Format(time.RFC3339)}
		changed = true
		return putReviewTx(tx, r)
	})
	if err != nil {
		return protocol.Review{}, false, fmt.Errorf("set review of %s in %s to %s: %w", imageID, datasetID, state, err)
	}
	return r, changed, nil
}

// ReviewCounts counts the review states of the given images (the dataset's current ones): stored
// reviews of images that are no longer in the dataset do not count.
func (s *Store) ReviewCounts(datasetID string, images []string) (protocol.ReviewCounts, error) {
	c := protocol.ReviewCounts{Dataset: datasetID, Images: len(images)}
	err := s.db.View(func(tx *bolt.Tx) error {
		b, _ := reviewBucket(tx, datasetID, false)
		if b == nil {
			return nil
		}
		for _, img := range images {
			raw := b.Get([]byte(img))
			if raw == nil {
				continue
			}
			var r protocol.Review
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("review of %s: %w", img, err)
			}
			switch r.State {
			case protocol.ReviewLabelled:
				c.Labelled++
			case protocol.ReviewNoDefect:
				c.NoDefect++
			}
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("review counts of %s: %w", datasetID, err)
	}
	c.Unlabelled = c.Images - c.Labelled - c.NoDefect
	return c, nil
}
