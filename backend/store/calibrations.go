//go:build !js

package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/rdre-studio/studio/shared/protocol"
)

// PutCalibration stores a calibration of model c.Model under c.ID. IDs that sort by time (as the job
// runner makes them) make the last one the newest; LatestCalibration relies on that.
func (s *Store) PutCalibration(c protocol.Calibration) error {
	if err := checkKey("model", c.Model); err != nil {
		return err
	}
	if err := checkKey("calibration", c.ID); err != nil {
		return err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode calibration %s: %w", c.ID, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bCalibs).CreateBucketIfNotExists([]byte(c.Model))
		if err != nil {
			return fmt.Errorf("calibrations of model %s: %w", c.Model, err)
		}
		if err := b.Put([]byte(c.ID), raw); err != nil {
			return fmt.Errorf("put calibration %s: %w", c.ID, err)
		}
		return nil
	})
}

// Calibrations returns the calibrations of a model, oldest first (none: an empty list).
func (s *Store) Calibrations(model string) ([]protocol.Calibration, error) {
	if err := checkKey("model", model); err != nil {
		return nil, err
	}
	var out []protocol.Calibration
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCalibs).Bucket([]byte(model))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var c protocol.Calibration
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode calibration %s of model %s: %w", k, model, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// LatestCalibration returns the newest calibration of a model; ok is false when it has none.
func (s *Store) LatestCalibration(model string) (c protocol.Calibration, ok bool, err error) {
	if err := checkKey("model", model); err != nil {
		return c, false, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCalibs).Bucket([]byte(model))
		if b == nil {
			return nil
		}
		k, v := b.Cursor().Last()
		if k == nil {
			return nil
		}
		ok = true
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("decode calibration %s of model %s: %w", k, model, err)
		}
		return nil
	})
	return c, ok, err
}
