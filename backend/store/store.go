//go:build !js

// Package store is the workspace: one bbolt file holding everything the tool learns about datasets
// (registered datasets, label classes, drawn masks with their history) and everything it computes
// (models, jobs, anomaly maps, results).
//
// # Durability
//
// Every exported write is one bbolt read-write transaction, committed with fsync (bbolt's default; NoSync
// is never set) before the method returns. A caller that tells the user "saved" after SaveMask returned
// nil is therefore right even if the process is killed with SIGKILL or the machine loses power right
// after (the tests prove the first by killing a child process). Two processes cannot open one workspace:
// the second fails after a short wait with an error that says the file is in use.
//
// # Schema, version 3
//
// Keys are raw bytes; "u32" is a big-endian uint32, so bbolt's byte order is numeric order.
//
//	meta/                                   bucket
//	  "schema"              -> u32          schema version of the file (3)
//	  "created"             -> RFC 3339     when the file was created
//	datasets/                               bucket
//	  <datasetID>           -> JSON protocol.DatasetInfo
//	classes/                                bucket
//	  <datasetID>/                          bucket per dataset
//	    <index: 1 byte>     -> JSON protocol.LabelClass (index 1..255 = the pixel value in label masks)
//	    "retired"           -> the indices of deleted classes, one byte each (reused last)
//	masks/                                  bucket
//	  <datasetID>/                          bucket per dataset
//	    <imageID>/                          bucket per image; its bbolt sequence is the newest version
//	      <version: u32>    -> mask record: byte 2 (record format), int64 BE unix nanoseconds saved,
//	                           u32 defect pixel count, u8 majority class, then the shared/mask
//	                           run-length encoding (format 1, from early builds, lacks the class byte)
//	models/                                 bucket
//	  <sha256 hex>          -> JSON, the job runner's model description
//	jobs/                                   bucket
//	  <jobID>               -> JSON, the job runner's job record
//	maps/                                   bucket
//	  <jobID>/                              bucket per job
//	    <imageID>           -> anomaly map, one of two encodings told apart by the first byte:
//	                           'F', byte 1, uvarint model size S, uvarint width, uvarint height, then
//	                           S*S IEEE 754 binary32 values, little-endian, row-major: the model's own
//	                           output, from which the w x h map is recomputed exactly (package resample);
//	                           'H', byte 1, uvarint width, uvarint height, then width*height IEEE 754
//	                           binary16 values, little-endian, row-major: any other map, compacted
//	results/                                bucket
//	  <jobID>               -> raw bytes (the job runner's result document)
//	trainings/                              bucket (since schema 2)
//	  <runID>               -> JSON, the training runner's run record (backend/training): the
//	                           protocol.TrainInfo shown to clients plus what a restart needs to resume
//	                           (run folder, staged images, held-out images, the trainer's arguments)
//	reviews/                                bucket (since schema 3)
//	  <datasetID>/                          bucket per dataset
//	    <imageID>           -> JSON protocol.Review: the image's review state (labelled,
//	                           reviewed-no-defect, ...), who set it and when; no key = unlabelled
//	calibrations/                           bucket (since schema 3)
//	  <model sha256 hex>/                   bucket per model
//	    <calibrationID>     -> JSON protocol.Calibration: thresholds computed on defect-free images
//	                           with their provenance (dataset, split, images, strategy, when)
//
// Mask versions start at 1 and only grow; a revert stores a copy of the old version as a new one, so
// history is never rewritten. Version 0 in the API means "the newest".
//
// Model maps (PutModelMap) are stored losslessly at the model's resolution: a 256x256 map is 256 KiB
// whatever the image size, and Map returns exactly the float32 map that inference produced, so metrics
// recomputed from the workspace (a resumed job, a report) equal those of the uninterrupted run. Other maps
// (PutMap) are stored as float16 to halve their size (a 1024x1024 map is 2 MiB instead of 4). What that
// loses: about 3 significant decimal digits remain (relative error <= 2^-11, ~0.05%); values below 6.1e-5
// lose relative precision (subnormals, absolute step 6e-8); values above 65504 become +Inf; NaN and Inf
// stay NaN and Inf. Distinct float32 scores that round to the same float16 become ties, so metrics that
// must agree with another implementation to 1e-6 are computed from the float32 maps in memory, not from
// the stored ones; the stored maps are for display and for re-thresholding.
//
// # Migrations
//
// Open reads meta/schema. A new file gets the current schema. An older file is upgraded by the functions
// in migrations, each taking the file from version v to v+1, all in the one transaction that also writes
// the new version, so an upgrade either completes or leaves the file as it was. A newer file is refused.
//
// History: 1 → 2 added the trainings bucket (nothing else changed; a version 1 file gains the empty bucket);
// 2 → 3 added the reviews and calibrations buckets (the same way).
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rdre-studio/studio/shared/protocol"
)

// SchemaVersion is the bucket schema this package reads and writes.
const SchemaVersion = 3

// ErrNotFound is wrapped when a requested record does not exist.
var ErrNotFound = errors.New("not found in the workspace")

// ErrInvalid is wrapped when an argument fails validation (bad id, bad class name or colour, bad mask).
var ErrInvalid = errors.New("invalid input")

var (
	bMeta      = []byte("meta")
	bDatasets  = []byte("datasets")
	bClasses   = []byte("classes")
	bMasks     = []byte("masks")
	bModels    = []byte("models")
	bJobs      = []byte("jobs")
	bMaps      = []byte("maps")
	bResults   = []byte("results")
	bTrainings = []byte("trainings")
	bReviews   = []byte("reviews")
	bCalibs    = []byte("calibrations")

	kSchema  = []byte("schema")
	kCreated = []byte("created")
)

var topBuckets = [][]byte{bMeta, bDatasets, bClasses, bMasks, bModels, bJobs, bMaps, bResults, bTrainings, bReviews, bCalibs}

// migrations[v] upgrades a file from schema v to v+1 inside the upgrade transaction.
var migrations = map[int]func(tx *bolt.Tx) error{
	1: func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bTrainings)
		return err
	},
	2: func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bReviews, bCalibs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
}

// maxKey bounds dataset, image, job and model ids (bbolt allows 32 KiB keys; ids are paths and hashes).
const maxKey = 1024

// Store is an open workspace. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

// DefaultPath is the workspace used when none is given: $XDG_DATA_HOME/rdre-studio/workspace.db, else the
// platform's per-user data folder (~/.local/share on Linux and the BSDs, os.UserConfigDir elsewhere, which
// is where macOS and Windows keep application data), else the working directory.
func DefaultPath() string {
	const rel = "rdre-studio/workspace.db"
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, filepath.FromSlash(rel))
	}
	switch runtime.GOOS {
	case "darwin", "windows", "ios", "plan9":
		if d, err := os.UserConfigDir(); err == nil {
			return filepath.Join(d, filepath.FromSlash(rel))
		}
	default:
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, ".local", "share", filepath.FromSlash(rel))
		}
	}
	return filepath.FromSlash("rdre-studio-workspace.db")
}

// Open opens or creates the workspace at path, creating its folder, and brings its schema up to date.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open workspace: %w: empty path", ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open workspace %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open workspace %s: the file is in use by another rdre process (%w)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open workspace %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.upgrade(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open workspace %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) upgrade() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		version := 0
		if meta != nil {
			raw := meta.Get(kSchema)
			if len(raw) != 4 {
				return fmt.Errorf("meta/schema is %d bytes, want 4: not a workspace file or a damaged one", len(raw))
			}
			version = int(binary.BigEndian.Uint32(raw))
		}
		if version > SchemaVersion {
			return fmt.Errorf("workspace schema %d is newer than this build's %d: use a newer rdre", version, SchemaVersion)
		}
		if meta == nil {
			// A fresh file: nothing to migrate, just the current schema.
			for _, b := range topBuckets {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return fmt.Errorf("create bucket %s: %w", b, err)
				}
			}
			meta = tx.Bucket(bMeta)
			if err := meta.Put(kCreated, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
				return err
			}
			return meta.Put(kSchema, u32(SchemaVersion))
		}
		if version == SchemaVersion {
			return nil
		}
		for v := version; v < SchemaVersion; v++ {
			m, ok := migrations[v]
			if !ok {
				return fmt.Errorf("no migration from workspace schema %d to %d", v, v+1)
			}
			if err := m(tx); err != nil {
				return fmt.Errorf("migrate workspace schema %d to %d: %w", v, v+1, err)
			}
		}
		for _, b := range topBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return tx.Bucket(bMeta).Put(kSchema, u32(SchemaVersion))
	})
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close workspace %s: %w", s.path, err)
	}
	return nil
}

// Path is the workspace file.
func (s *Store) Path() string { return s.path }

// Schema returns the schema version recorded in the file.
func (s *Store) Schema() (int, error) {
	var v int
	err := s.db.View(func(tx *bolt.Tx) error {
		v = int(binary.BigEndian.Uint32(tx.Bucket(bMeta).Get(kSchema)))
		return nil
	})
	return v, err
}

func u32(v uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return b[:]
}

// checkKey validates an id used as a bucket key.
func checkKey(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(id) > maxKey {
		return fmt.Errorf("%w: %s of %d bytes (max %d)", ErrInvalid, what, len(id), maxKey)
	}
	if strings.ContainsRune(id, 0) {
		return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalid, what)
	}
	return nil
}

// ---- datasets ----

// PutDataset registers (or updates) a dataset.
func (s *Store) PutDataset(info protocol.DatasetInfo) error {
	if err := checkKey("dataset id", info.ID); err != nil {
		return err
	}
	raw, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("encode dataset %s: %w", info.ID, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bDatasets).Put([]byte(info.ID), raw); err != nil {
			return fmt.Errorf("put dataset %s: %w", info.ID, err)
		}
		return nil
	})
}

// Datasets lists the registered datasets, sorted by id.
func (s *Store) Datasets() ([]protocol.DatasetInfo, error) {
	var out []protocol.DatasetInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bDatasets).ForEach(func(k, v []byte) error {
			var d protocol.DatasetInfo
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("dataset %s: %w", k, err)
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	return out, nil
}

// Dataset returns one registered dataset.
func (s *Store) Dataset(id string) (protocol.DatasetInfo, error) {
	var d protocol.DatasetInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bDatasets).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("dataset %q: %w", id, ErrNotFound)
		}
		return json.Unmarshal(v, &d)
	})
	return d, err
}

// ---- generic JSON records for the job runner ----

func (s *Store) putJSON(bucket []byte, what, key string, v any) error {
	if err := checkKey(what, key); err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", what, key, err)
	}
	return s.putRaw(bucket, what, key, raw)
}

func (s *Store) putRaw(bucket []byte, what, key string, raw []byte) error {
	if err := checkKey(what, key); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Put([]byte(key), raw); err != nil {
			return fmt.Errorf("put %s %s: %w", what, key, err)
		}
		return nil
	})
}

func (s *Store) getRaw(bucket []byte, what, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("%s %q: %w", what, key, ErrNotFound)
		}
		out = append([]byte(nil), v...) // bbolt's slice dies with the transaction
		return nil
	})
	return out, err
}

func (s *Store) each(bucket []byte, fn func(key string, raw []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}

// PutModel stores a model description (JSON-encoded v) under its file's SHA-256.
func (s *Store) PutModel(sha256 string, v any) error { return s.putJSON(bModels, "model", sha256, v) }

// Models calls fn for every model, in key order; an error from fn stops the walk and is returned.
func (s *Store) Models(fn func(sha string, raw []byte) error) error { return s.each(bModels, fn) }

// PutJob stores a job record (JSON-encoded v).
func (s *Store) PutJob(id string, v any) error { return s.putJSON(bJobs, "job", id, v) }

// Job decodes job id into v.
func (s *Store) Job(id string, v any) error {
	raw, err := s.getRaw(bJobs, "job", id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode job %s: %w", id, err)
	}
	return nil
}

// Jobs calls fn for every job, in id order.
func (s *Store) Jobs(fn func(id string, raw []byte) error) error { return s.each(bJobs, fn) }

// PutResult stores a job's result document.
func (s *Store) PutResult(jobID string, raw []byte) error {
	return s.putRaw(bResults, "result", jobID, raw)
}

// Result returns a job's result document.
func (s *Store) Result(jobID string) ([]byte, error) { return s.getRaw(bResults, "result", jobID) }

// DeleteJob removes a job with its maps and result, in one transaction.
func (s *Store) DeleteJob(id string) error {
	if err := checkKey("job id", id); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bJobs).Delete([]byte(id)); err != nil {
			return err
		}
		if err := tx.Bucket(bResults).Delete([]byte(id)); err != nil {
			return err
		}
		if err := tx.Bucket(bMaps).DeleteBucket([]byte(id)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return fmt.Errorf("delete maps of job %s: %w", id, err)
		}
		return nil
	})
}
