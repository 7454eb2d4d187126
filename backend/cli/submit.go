//go:build !js

package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/submission"
	"github.com/rdre-studio/studio/shared/protocol"
)

func init() {
	Register(Command{
		Name:    "submit",
		Summary: "write an MVTec AD 2 submission (float16 TIFF maps, 0/255 PNG masks, tar.gz) of the private test splits, or check one",
		Run:     runSubmit,
	})
}

func runSubmit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maps := fs.String("maps", "", "folder of the maps of test_private and test_private_mixed, by image key: DIR/KEY.npy, or DIR/SPLIT/KEY.npy ('rdre infer --split test_private --out DIR/test_private')")
	data := fs.String("data", "", "the MVTec AD 2 dataset (one category or the folder of all)")
	layout := fs.String("layout", "", "force the dataset layout (default: detect)")
	var thresholdFiles []string
	fs.Func("thresholds", "thresholds file of 'rdre calibrate' (its pixel threshold binarises the maps); once per category when the dataset has several", func(v string) error {
		thresholdFiles = append(thresholdFiles, v)
		return nil
	})
	var threshold *float64
	fs.Func("threshold", "one pixel threshold for every category instead of --thresholds", func(v string) error {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(t) || math.IsInf(t, 0) {
			return fmt.Errorf("want a finite number")
		}
		threshold = &t
		return nil
	})
	out := fs.String("out", "", "the submission to write, NAME.tar.gz (the archive holds the one folder NAME)")
	check := fs.String("check", "", "check a submission tar.gz instead: against --data's private images when given, else against the official MVTec AD 2 file list")
	jsonOut := fs.Bool("json", false, "with --check: print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre submit --maps DIR --data DATASET (--thresholds FILE | --threshold T) --out SUBMISSION.tar.gz")
		fmt.Fprintln(stderr, "       rdre submit --check SUBMISSION.tar.gz [--data DATASET]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	if *check != "" {
		if *maps != "" || *out != "" || thresholdFiles != nil || threshold != nil {
			fmt.Fprintln(stderr, "rdre submit: --check takes only --data (and --layout, --json)")
			return 2
		}
		return runSubmitCheck(*check, *data, *layout, *jsonOut, stdout, stderr)
	}
	if *maps == "" || *data == "" || *out == "" || (thresholdFiles == nil) == (threshold == nil) {
		fmt.Fprintln(stderr, "rdre submit: --maps, --data, --out and one of --thresholds and --threshold are required")
		fs.Usage()
		return 2
	}
	if err := writeSubmission(*maps, *data, *layout, *out, thresholdFiles, threshold, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "rdre submit: %v\n", err)
		return 1
	}
	return 0
}

// privateImages lists the private-split images of an MVTec AD 2 dataset.
func privateImages(ds *dataset.Dataset) ([]protocol.ImageInfo, error) {
	var ims []protocol.ImageInfo
	for _, im := range ds.Images() {
		if slices.Contains(submission.Splits, im.Split) {
			ims = append(ims, im)
		}
	}
	if len(ims) == 0 {
		info := ds.Info()
		return nil, fmt.Errorf("dataset %s (%s layout) has no test_private or test_private_mixed images (splits: %s)", info.Root, info.Layout, strings.Join(info.Splits, ", "))
	}
	slices.SortFunc(ims, func(a, b protocol.ImageInfo) int { return strings.Compare(a.ID, b.ID) })
	return ims, nil
}

func stemOf(id string) string {
	b := path.Base(id)
	return strings.TrimSuffix(b, path.Ext(b))
}

// expectedOf is what a submission of the dataset's private images must hold.
func expectedOf(ims []protocol.ImageInfo) (submission.Expected, error) {
	exp := submission.Expected{}
	seen := map[string]string{}
	for _, im := range ims {
		if exp[im.Category] == nil {
			exp[im.Category] = map[string][]submission.Item{}
		}
		k := im.Category + "/" + im.Split + "/" + stemOf(im.ID)
		if other, dup := seen[k]; dup {
			return nil, fmt.Errorf("images %s and %s would both be %s in the submission", other, im.ID, k)
		}
		seen[k] = im.ID
		exp[im.Category][im.Split] = append(exp[im.Category][im.Split], submission.Item{Stem: stemOf(im.ID), W: im.Width, H: im.Height})
	}
	return exp, nil
}

// submissionRoot is the folder name inside NAME.tar.gz.
func submissionRoot(out string) string {
	b := filepath.Base(out)
	for _, ext := range []string{".tar.gz", ".tgz"} {
		if strings.HasSuffix(b, ext) {
			return strings.TrimSuffix(b, ext)
		}
	}
	return strings.TrimSuffix(b, filepath.Ext(b))
}

func writeSubmission(mapsDir, data, layout, out string, thresholdFiles []string, threshold *float64, stdout, stderr io.Writer) error {
	if !strings.HasSuffix(out, ".tar.gz") && !strings.HasSuffix(out, ".tgz") {
		return fmt.Errorf("--out %s: the submission is a .tar.gz", out)
	}
	ds, err := dataset.OpenWith(data, dataset.Options{Layout: layout})
	if err != nil {
		return err
	}
	defer ds.Close()
	ims, err := privateImages(ds)
	if err != nil {
		return err
	}
	exp, err := expectedOf(ims)
	if err != nil {
		return err
	}
	// One pixel threshold per category.
	thr := map[string]float64{}
	src := map[string]string{}
	cats := make([]string, 0, len(exp))
	for c := range exp {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	if threshold != nil {
		for _, c := range cats {
			thr[c], src[c] = *threshold, "--threshold"
		}
	}
	for _, p := range thresholdFiles {
		tf, err := loadThresholds(p)
		if err != nil {
			return err
		}
		if tf.Pixel == nil {
			return fmt.Errorf("%s has no pixel threshold", p)
		}
		c := tf.Provenance.Category
		if c == "" && len(cats) == 1 {
			c = cats[0]
		}
		if _, ok := exp[c]; !ok {
			return fmt.Errorf("%s is for category %q, which has no private images in %s (categories: %s)", p, c, data, strings.Join(cats, ", "))
		}
		if prev, dup := src[c]; dup {
			return fmt.Errorf("category %s has two thresholds files: %s and %s", c, prev, p)
		}
		if tf.Provenance.Split != protocol.SplitValidation {
			fmt.Fprintf(stderr, "rdre submit: warning: %s was calibrated on %s, not on the validation split MVTec AD 2 allows\n", p, tf.Provenance.Split)
		}
		thr[c], src[c] = tf.Pixel.Threshold, p+" ("+tf.Pixel.Method+")"
	}
	for _, c := range cats {
		if _, ok := thr[c]; !ok {
			return fmt.Errorf("no thresholds file for category %s (calibrate each category: rdre calibrate --category %s)", c, c)
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	w, err := submission.NewWriter(f, submissionRoot(out))
	if err != nil {
		f.Close()
		return err
	}
	for _, im := range ims {
		m, _, err := readMapOf(mapsDir, im)
		if err != nil {
			f.Close()
			return err
		}
		if err := w.Add(im.Category, im.Split, stemOf(im.ID), m.W, m.H, m.Data, m.Data64, thr[im.Category]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Check what was written before it takes the final name.
	rf, err := os.Open(tmp)
	if err != nil {
		return err
	}
	rep := submission.Check(rf, exp)
	rf.Close()
	if !rep.OK() {
		return fmt.Errorf("the written submission fails its check:\n  %s", strings.Join(rep.Errors, "\n  "))
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	if w.Clamped > 0 {
		fmt.Fprintf(stderr, "rdre submit: warning: %d map values beyond the float16 range were clamped to +-%d\n", w.Clamped, submission.MaxHalf)
	}
	for _, c := range cats {
		fmt.Fprintf(stdout, "submit: %s: threshold %.9g from %s\n", c, thr[c], src[c])
	}
	fmt.Fprintf(stdout, "submit: wrote %s: %d maps and %d masks of %d images in %d categories; check passed\n", out, rep.Maps, rep.Masks, len(ims), len(cats))
	if _, full := submission.OfficialCounts[cats[0]]; !full || len(cats) != len(submission.OfficialCounts) {
		fmt.Fprintf(stdout, "submit: note: the evaluation server wants all %d MVTec AD 2 objects in one submission; this one has %d\n", len(submission.OfficialCounts), len(cats))
	}
	return nil
}

func runSubmitCheck(file, data, layout string, asJSON bool, stdout, stderr io.Writer) int {
	exp := submission.Official()
	against := "the official MVTec AD 2 file list"
	if data != "" {
		ds, err := dataset.OpenWith(data, dataset.Options{Layout: layout})
		if err != nil {
			fmt.Fprintf(stderr, "rdre submit: %v\n", err)
			return 1
		}
		ims, err := privateImages(ds)
		if err == nil {
			exp, err = expectedOf(ims)
		}
		ds.Close()
		if err != nil {
			fmt.Fprintf(stderr, "rdre submit: %v\n", err)
			return 1
		}
		against = "the private images of " + data
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(stderr, "rdre submit: %v\n", err)
		return 1
	}
	rep := submission.Check(f, exp)
	f.Close()
	if asJSON {
		raw, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(stdout, string(raw))
	} else {
		for _, w := range rep.Warnings {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		for _, e := range rep.Errors {
			fmt.Fprintf(stdout, "error: %s\n", e)
		}
		verdict := "ok"
		if !rep.OK() {
			verdict = fmt.Sprintf("FAILED (%d errors)", len(rep.Errors))
		}
		fmt.Fprintf(stdout, "check %s against %s: %s: %d objects, %d maps, %d masks\n", file, against, verdict, rep.Objects, rep.Maps, rep.Masks)
	}
	if !rep.OK() {
		return 1
	}
	return 0
}
