//go:build !js

package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// PutTraining stores a training run record (JSON-encoded v) under its run ID.
func (s *Store) PutTraining(id string, v any) error {
	return s.putJSON(bTrainings, "training run", id, v)
}

// Training decodes training run id into v.
func (s *Store) Training(id string, v any) error {
	raw, err := s.getRaw(bTrainings, "training run", id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode training run %s: %w", id, err)
	}
	return nil
}

// Trainings calls fn for every training run, in ID order (IDs start with their UTC creation time, so
// this is creation order).
func (s *Store) Trainings(fn func(id string, raw []byte) error) error { return s.each(bTrainings, fn) }

// DeleteTraining removes a training run record (its folder on disk is the caller's).
func (s *Store) DeleteTraining(id string) error {
	if err := checkKey("training run id", id); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bTrainings).Delete([]byte(id)) })
}
