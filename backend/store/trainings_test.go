//go:build !js

package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A schema-1 workspace (from before training runs) opens, gains the trainings bucket, keeps its data,
// and stores runs from then on.
func TestStore_Trainings_MigratesSchema1AndRoundTrips(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ws.db")
	// A version 1 file as the builds before training wrote it: no trainings bucket.
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range topBuckets {
			if string(b) == string(bTrainings) || string(b) == string(bReviews) || string(b) == string(bCalibs) {
				continue // added by schemas 2 and 3
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bJobs).Put([]byte("job1"), []byte(`{"info":{"id":"job1"}}`)); err != nil {
			return err
		}
		return tx.Bucket(bMeta).Put(kSchema, u32(1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err := Open(p)
	if err != nil {
		t.Fatalf("open a schema 1 file: %v", err)
	}
	if v, err := s.Schema(); err != nil || v != SchemaVersion || SchemaVersion != 3 {
		t.Fatalf("schema after upgrade: %d %v", v, err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bTrainings, bReviews, bCalibs} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("no %s bucket after the upgrade from schema 1", b)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	if err := s.Job("job1", &job); err != nil {
		t.Fatalf("the old job is gone: %v", err)
	}
	type run struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	for _, id := range []string{"20260101-000002-b", "20260101-000001-a"} {
		if err := s.PutTraining(id, run{ID: id, State: "running"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutTraining("20260101-000001-a", run{ID: "20260101-000001-a", State: "done"}); err != nil {
		t.Fatal(err)
	}
	var got run
	if err := s.Training("20260101-000001-a", &got); err != nil || got.State != "done" {
		t.Fatalf("training run: %+v %v", got, err)
	}
	var order []string
	if err := s.Trainings(func(id string, raw []byte) error { order = append(order, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != "20260101-000001-a" {
		t.Fatalf("runs in order %v", order)
	}
	if err := s.DeleteTraining("20260101-000002-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Training("20260101-000002-b", &got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted run: %v", err)
	}
	if err := s.PutTraining("", run{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty id: %v", err)
	}
	s.Close()
	// Reopening an upgraded file changes nothing.
	s, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Training("20260101-000001-a", &got); err != nil {
		t.Fatal(err)
	}
}
