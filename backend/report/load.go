//go:build !js

package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rdre-studio/studio/backend/cli/version"
	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/store"
	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// FingerprintMethod says what Fingerprint hashes, so that anyone can recompute it.
const FingerprintMethod = "sha256 over the sorted lines \"PATH\\tSIZE\\tMTIME_UNIX_NS\\n\" of the evaluated images and their dataset masks, PATH relative to the dataset root"

// ErrNotFinished is wrapped when a report is asked of a job that has no final result.
var ErrNotFinished = errors.New("the job has not finished; reports need its final result")

// jobRecord is the job runner's record in the workspace (backend/jobs).
type jobRecord struct {
	Info   protocol.JobInfo      `json:"info"`
	Scores []protocol.ImageScore `json:"scores"`
}

// Loaded is an Input with the dataset it reopened; Close releases the dataset.
type Loaded struct {
	*Input
	ds *dataset.Dataset
}

// Close closes the dataset opened for the gallery.
func (l *Loaded) Close() error {
	if l == nil || l.ds == nil {
		return nil
	}
	return l.ds.Close()
}

// Load fills a report Input from the workspace: the job's record and exact final result, its model,
// its dataset (reopened from the root the workspace recorded, for the gallery and the fingerprint). A
// dataset that cannot be reopened is not an error: the report then says the gallery and fingerprint are
// unavailable and why.
func Load(st *store.Store, jobID string) (*Loaded, error) {
	var rec jobRecord
	if err := st.Job(jobID, &rec); err != nil {
		return nil, fmt.Errorf("load job %s: %w", jobID, err)
	}
	if rec.Info.State != protocol.JobDone {
		return nil, fmt.Errorf("load job %s: %w (it is %s)", jobID, ErrNotFinished, orDash(rec.Info.State))
	}
	raw, err := st.Result(jobID)
	if err != nil {
		return nil, fmt.Errorf("load result of job %s: %w", jobID, err)
	}
	var res sm.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("decode result of job %s: %w", jobID, err)
	}
	in := &Input{
		Job: rec.Info, Scores: rec.Scores, Result: &res, ToolVersion: version.Version, Generated: time.Now().UTC(),
		Model: protocol.ModelInfo{SHA256: rec.Info.Model, Name: rec.Info.ModelName},
	}
	err = st.Models(func(sha string, raw []byte) error {
		if sha != rec.Info.Model {
			return nil
		}
		if err := json.Unmarshal(raw, &in.Model); err != nil {
			return fmt.Errorf("decode model %s: %w", sha, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load model of job %s: %w", jobID, err)
	}
	in.Efficiency = EfficiencyFromMetadata(in.Model)

	l := &Loaded{Input: in}
	in.Dataset, err = st.Dataset(rec.Info.Dataset)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("load dataset of job %s: %w", jobID, err)
		}
		in.Dataset = protocol.DatasetInfo{ID: rec.Info.Dataset}
		in.Fingerprint = Fingerprint{Method: FingerprintMethod, Error: "the dataset is not registered in this workspace"}
		return l, nil
	}
	ds, err := dataset.Reopen(in.Dataset)
	if err != nil {
		in.Fingerprint = Fingerprint{Method: FingerprintMethod, Error: err.Error()}
		return l, nil
	}
	l.ds = ds
	in.Fingerprint = FingerprintOf(ds, imageIDs(rec.Scores))
	in.Gallery = galleryFromStore(st, ds, rec.Info)
	return l, nil
}

func imageIDs(scores []protocol.ImageScore) []string {
	ids := make([]string, len(scores))
	for i, s := range scores {
		ids[i] = s.Image
	}
	return ids
}

// FingerprintOf hashes the paths, sizes and modification times of the given images of ds and of their
// dataset masks (FingerprintMethod). Content is not read: the fingerprint is cheap enough to compute for
// every report and still changes when a file is replaced, resized or touched.
func FingerprintOf(ds *dataset.Dataset, imageIDs []string) Fingerprint {
	fp := Fingerprint{Method: FingerprintMethod}
	files := map[string]bool{}
	for _, id := range imageIDs {
		im, ok := ds.Image(id)
		if !ok {
			fp.Error = fmt.Sprintf("image %s is no longer in the dataset", id)
			return fp
		}
		files[id] = true
		if im.MaskID != "" {
			files[im.MaskID] = true
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		f, err := ds.Open(p)
		if err != nil {
			fp.Error = err.Error()
			return fp
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			fp.Error = fmt.Sprintf("stat %s: %v", p, err)
			return fp
		}
		fmt.Fprintf(h, "%s\t%d\t%d\n", p, fi.Size(), fi.ModTime().UnixNano())
	}
	fp.SHA256 = hex.EncodeToString(h.Sum(nil))
	fp.Files = len(paths)
	return fp
}

// galleryFromStore reads the gallery material of one image: the picture from the dataset, the map the
// job cached, and the mask the job evaluated against (the recorded workspace version, else the
// dataset's).
func galleryFromStore(st *store.Store, ds *dataset.Dataset, job protocol.JobInfo) GalleryFunc {
	return func(id string) (*GalleryImage, error) {
		img, err := ds.Decode(id)
		if err != nil {
			return nil, err
		}
		m, w, h, err := st.Map(job.ID, id)
		if err != nil {
			return nil, fmt.Errorf("map of %s: %w", id, err)
		}
		g := &GalleryImage{Image: img, Map: m, W: w, H: h}
		if v, ok := job.MaskVersions[id]; ok && job.Masks == protocol.MasksWorkspace {
			lm, _, err := st.Mask(job.Dataset, id, v)
			if err != nil {
				return nil, fmt.Errorf("workspace mask v%d of %s: %w", v, id, err)
			}
			if lm.Count() > 0 {
				g.Mask = lm.Binary()
			}
			return g, nil
		}
		mask, _, _, ok, err := ds.GroundTruth(id)
		if err != nil {
			return nil, err
		}
		if ok {
			g.Mask = mask
		}
		return g, nil
	}
}
