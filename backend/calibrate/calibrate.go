// Package calibrate derives anomaly thresholds from defect-free images only, so that a threshold never
// sees the test set: MVTec AD 2 allows thresholds from its defect-free validation split and nothing else.
//
// Strategies (Method):
//   - mean-kstd:K: mean + K * std of all normal pixel values (population std, as numpy's np.std; K = 3 is
//     MVTec AD 2's baseline: np.mean(anomaly_scores_val) + 3 * np.std(anomaly_scores_val));
//   - pixel-fpr:Q: the lowest pixel value t such that at most the share Q of the normal pixels score >= t
//     (an exact quantile of the normal pixels: the pixel false-positive rate on the calibration set is
//     <= Q and as close to it as the ties allow);
//   - image-fpr:Q: the same over the normal images' scores (image false-alarm rate <= Q).
//
// One rule everywhere: a pixel or image is anomalous iff its score >= the threshold. A strategy whose
// bound cannot be met by any score (every normal pixel ties at the maximum) returns the next float above
// the maximum, at which nothing is flagged.
//
// Everything is exact and streaming: maps are read one at a time (a Source) in a few passes, so a
// calibration set larger than memory works; the pixel quantile is found by refining a histogram of the
// values' ordered bit patterns, 16 bits per pass, and sorting only the last bucket.
//
// The package is pure Go and builds for wasm.
package calibrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Method is one calibration strategy with its parameter.
type Method struct {
	Name  string  // MeanKStd, PixelFPR or ImageFPR
	Param float64 // K, or the target FPR
}

// Strategy names.
const (
	MeanKStd = "mean-kstd"
	PixelFPR = "pixel-fpr"
	ImageFPR = "image-fpr"
)

// String is the method as the command line writes it, e.g. "mean-kstd:3".
func (m Method) String() string { return m.Name + ":" + strconv.FormatFloat(m.Param, 'f', -1, 64) }

// Pixel reports whether the method yields a pixel threshold (else an image threshold).
func (m Method) Pixel() bool { return m.Name != ImageFPR }

// ParseMethods reads a comma-separated list such as "mean-kstd:3,image-fpr:0.05": at most one pixel method
// and one image method. A name without a parameter takes its default (K 3, FPR 0.01 for pixels, 0.05 for
// images).
func ParseMethods(s string) ([]Method, error) {
	var out []Method
	var pixel, image bool
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, param, has := strings.Cut(f, ":")
		m := Method{Name: name}
		switch name {
		case MeanKStd:
			m.Param = 3
		case PixelFPR:
			m.Param = 0.01
		case ImageFPR:
			m.Param = 0.05
		default:
			return nil, fmt.Errorf("method %q: want %s:K, %s:FPR or %s:FPR", f, MeanKStd, PixelFPR, ImageFPR)
		}
		if has {
			v, err := strconv.ParseFloat(param, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("method %q: %q is not a number", f, param)
			}
			m.Param = v
		}
		if m.Name != MeanKStd && !(m.Param >= 0 && m.Param <= 1) {
			return nil, fmt.Errorf("method %q: the target FPR must be in [0, 1]", f)
		}
		if m.Pixel() {
			if pixel {
				return nil, fmt.Errorf("methods %q: at most one pixel method (%s or %s)", s, MeanKStd, PixelFPR)
			}
			pixel = true
		} else {
			if image {
				return nil, fmt.Errorf("methods %q: at most one %s method", s, ImageFPR)
			}
			image = true
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("methods %q: none given", s)
	}
	return out, nil
}

// Map is one calibration image: its map (exactly one of Values32 and Values64) and its image score.
type Map struct {
	Values32 []float32
	Values64 []float64
	Score    float64
}

// Source gives the calibration images one at a time; Load may be called several times for one index.
type Source interface {
	Len() int
	Load(i int) (Map, error)
}

// Result is what Calibrate finds; File adds the provenance.
type Result struct {
	Pixel  *Threshold  `json:"pixel,omitempty"`
	Image  *Threshold  `json:"image,omitempty"`
	Normal NormalStats `json:"normal"`
}

// Threshold is one calibrated threshold.
type Threshold struct {
	Method    string  `json:"method"`
	Threshold float64 `json:"threshold"`
	// FPR is the share of the calibration set's normal pixels (or images) at or above the threshold.
	FPR float64 `json:"fpr_on_calibration_set"`
}

// NormalStats describe the calibration set.
type NormalStats struct {
	Images    int     `json:"images"`
	Pixels    int64   `json:"pixels"`
	PixelMean float64 `json:"pixel_mean"`
	PixelStd  float64 `json:"pixel_std"`
	PixelMin  float64 `json:"pixel_min"`
	PixelMax  float64 `json:"pixel_max"`
	ScoreMin  float64 `json:"image_score_min"`
	ScoreMax  float64 `json:"image_score_max"`
}

// Calibrate computes the thresholds of methods over the images of src, all of them defect-free.
func Calibrate(src Source, methods []Method) (*Result, error) {
	n := src.Len()
	if n == 0 {
		return nil, errors.New("calibrate: no images")
	}
	c := &calib{src: src}
	// Pass 1: count, sum, range, scores.
	var sum kahan
	c.min, c.max = math.Inf(1), math.Inf(-1)
	scores := make([]float64, 0, n)
	err := c.each(func(m Map) {
		scores = append(scores, m.Score)
	}, func(v float64) {
		c.count++
		sum.add(v)
		c.min = min(c.min, v)
		c.max = max(c.max, v)
	})
	if err != nil {
		return nil, err
	}
	if c.count == 0 {
		return nil, errors.New("calibrate: the maps have no pixels")
	}
	res := &Result{Normal: NormalStats{Images: n, Pixels: c.count, PixelMin: c.min, PixelMax: c.max,
		ScoreMin: slices.Min(scores), ScoreMax: slices.Max(scores)}}
	mean := sum.value() / float64(c.count)
	res.Normal.PixelMean = mean
	// Pass 2: the variance around the mean (two-pass, as numpy).
	var sq kahan
	if err := c.each(nil, func(v float64) { d := v - mean; sq.add(d * d) }); err != nil {
		return nil, err
	}
	std := math.Sqrt(sq.value() / float64(c.count))
	res.Normal.PixelStd = std
	for _, m := range methods {
		switch m.Name {
		case MeanKStd:
			t := mean + m.Param*std
			if math.IsInf(t, 0) || math.IsNaN(t) {
				return nil, fmt.Errorf("calibrate: %s gives %v", m, t)
			}
			at, err := c.countAtLeast(t)
			if err != nil {
				return nil, err
			}
			res.Pixel = &Threshold{Method: m.String(), Threshold: t, FPR: float64(at) / float64(c.count)}
		case PixelFPR:
			t, at, err := c.quantile(m.Param)
			if err != nil {
				return nil, err
			}
			res.Pixel = &Threshold{Method: m.String(), Threshold: t, FPR: float64(at) / float64(c.count)}
		case ImageFPR:
			t, at := highQuantile(scores, m.Param)
			res.Image = &Threshold{Method: m.String(), Threshold: t, FPR: float64(at) / float64(len(scores))}
		default:
			return nil, fmt.Errorf("calibrate: unknown method %q", m.Name)
		}
	}
	return res, nil
}

type calib struct {
	src      Source
	count    int64
	min, max float64
}

// each calls img for every image and px for every pixel value, in order.
func (c *calib) each(img func(Map), px func(float64)) error {
	for i := range c.src.Len() {
		m, err := c.src.Load(i)
		if err != nil {
			return err
		}
		if (m.Values32 == nil) == (m.Values64 == nil) {
			return fmt.Errorf("calibrate: image %d: want exactly one of a float32 and a float64 map", i)
		}
		if img != nil {
			img(m)
		}
		if px == nil {
			continue
		}
		if m.Values64 != nil {
			for _, v := range m.Values64 {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return fmt.Errorf("calibrate: image %d: map value %v is not finite", i, v)
				}
				px(v)
			}
		} else {
			for _, v := range m.Values32 {
				f := float64(v)
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return fmt.Errorf("calibrate: image %d: map value %v is not finite", i, v)
				}
				px(f)
			}
		}
	}
	return nil
}

// countAtLeast counts the pixels >= t.
func (c *calib) countAtLeast(t float64) (int64, error) {
	var n int64
	err := c.each(nil, func(v float64) {
		if v >= t {
			n++
		}
	})
	return n, err
}

// allowed is the largest count a with a/n <= q (the FPR test as a float64 division, decided exactly).
func allowed(n int64, q float64) int64 {
	a := int64(q * float64(n))
	for a > 0 && float64(a)/float64(n) > q {
		a--
	}
	for a < n && float64(a+1)/float64(n) <= q {
		a++
	}
	return a
}

// highQuantile is the lowest value t of xs with #{x >= t} <= allowed(len, q), and that count; the next
// float above the maximum (count 0) when even the maximum is too frequent.
func highQuantile(xs []float64, q float64) (float64, int64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	slices.Reverse(s)
	a := allowed(int64(len(s)), q)
	t, at := math.Nextafter(s[0], math.Inf(1)), int64(0)
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if int64(j) > a {
			break
		}
		t, at = s[i], int64(j)
		i = j
	}
	return t, at
}

// quantile is highQuantile over every pixel, streaming: each pass histograms the next 16 bits of the
// ordered bit patterns (key) of the values inside the current bucket, until the bucket holds few enough
// values to sort.
func (c *calib) quantile(q float64) (float64, int64, error) {
	a := allowed(c.count, q)
	var prefix uint64 // the bits of the bucket decided so far
	shift := uint(64) // values in the bucket have key >> shift == prefix >> shift
	var above int64   // values above the bucket
	for shift > 0 {
		ns := shift - 16
		hist := make([]int64, 1<<16)
		err := c.each(nil, func(v float64) {
			k := key(v)
			if shift == 64 || k>>shift == prefix>>shift {
				hist[(k>>ns)&0xffff]++
			}
		})
		if err != nil {
			return 0, 0, err
		}
		var total int64
		for _, h := range hist {
			total += h
		}
		// The first digit from the top where the cumulative count passes a.
		d := -1
		cum := above
		for i := len(hist) - 1; i >= 0; i-- {
			if cum+hist[i] > a {
				d = i
				break
			}
			cum += hist[i]
		}
		if d < 0 {
			// Every value of the bucket qualifies: the answer is the bucket's minimum.
			break
		}
		above = cum
		prefix = prefix&^(0xffff<<ns) | uint64(d)<<ns
		shift = ns
		if hist[d] <= collectMax {
			break
		}
	}
	// Final pass: the values of the bucket, sorted, and the least value above the bucket.
	var in []float64
	minAbove := math.Inf(1)
	var minAll = math.Inf(1)
	err := c.each(nil, func(v float64) {
		k := key(v)
		minAll = min(minAll, v)
		switch {
		case shift == 64:
		case k>>shift == prefix>>shift:
			if shift > 0 { // at shift 0 the bucket is one value, which does not qualify
				in = append(in, v)
			}
		case k>>shift > prefix>>shift:
			minAbove = min(minAbove, v)
		}
	})
	if err != nil {
		return 0, 0, err
	}
	if shift == 64 {
		// Every value qualifies (a >= count).
		return minAll, c.count, nil
	}
	slices.Sort(in)
	slices.Reverse(in)
	t, at := minAbove, above
	if math.IsInf(minAbove, 1) {
		t = math.Nextafter(c.max, math.Inf(1))
	}
	for i := 0; i < len(in); {
		j := i
		for j < len(in) && in[j] == in[i] {
			j++
		}
		if above+int64(j) > a {
			break
		}
		t, at = in[i], above+int64(j)
		i = j
	}
	return t, at, nil
}

// collectMax is the most values the last pass of quantile sorts (a variable for the tests).
var collectMax int64 = 1 << 20

// key maps a finite float64 to a uint64 whose order is the values' order (-0 and +0 share a key).
func key(v float64) uint64 {
	if v == 0 {
		v = 0
	}
	b := math.Float64bits(v)
	if b&(1<<63) != 0 {
		return ^b
	}
	return b | 1<<63
}

// kahan is a Neumaier-compensated sum.
type kahan struct{ s, c float64 }

func (k *kahan) add(x float64) {
	t := k.s + x
	if math.Abs(k.s) >= math.Abs(x) {
		k.c += (k.s - t) + x
	} else {
		k.c += (x - t) + k.s
	}
	k.s = t
}

func (k *kahan) value() float64 { return k.s + k.c }

// File is a thresholds file: what `rdre calibrate` writes and `rdre eval --thresholds` and `rdre submit
// --thresholds` read.
type File struct {
	Version    int         `json:"version"`
	Kind       string      `json:"kind"`
	Pixel      *Threshold  `json:"pixel,omitempty"`
	Image      *Threshold  `json:"image,omitempty"`
	Normal     NormalStats `json:"normal"`
	Provenance Provenance  `json:"provenance"`
}

// FileKind marks a thresholds file.
const FileKind = "rdre-studio.thresholds"

// Provenance says where the thresholds come from.
type Provenance struct {
	Dataset string `json:"dataset"`
	Layout  string `json:"layout"`
	Split   string `json:"split"`
	// Category is set when the calibration covers one category of a dataset of several.
	Category string `json:"category,omitempty"`
	Maps     string `json:"maps"`
	// Scores is the image-score source: a scores file, or "max of map".
	Scores  string   `json:"scores"`
	Images  int      `json:"images"`
	Pixels  int64    `json:"pixels"`
	Methods []string `json:"methods"`
	Date    string   `json:"date"`
	Tool    string   `json:"tool"`
}

// Describe is a one-line summary of the pixel threshold's origin for results ("thresholds.json:
// mean-kstd:3 on validation").
func (f *File) Describe(path string) string {
	if f.Pixel == nil {
		return path
	}
	return fmt.Sprintf("%s: %s on %s (%d images)", path, f.Pixel.Method, f.Provenance.Split, f.Provenance.Images)
}

// Decode reads and checks a thresholds file.
func Decode(raw []byte) (*File, error) {
	var f File
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("thresholds file: %w", err)
	}
	if f.Kind != FileKind || f.Version != 1 {
		return nil, fmt.Errorf("thresholds file: kind %q version %d, want %q version 1 (written by rdre calibrate)", f.Kind, f.Version, FileKind)
	}
	for _, t := range []*Threshold{f.Pixel, f.Image} {
		if t != nil && (math.IsNaN(t.Threshold) || math.IsInf(t.Threshold, 0)) {
			return nil, fmt.Errorf("thresholds file: threshold %v is not finite", t.Threshold)
		}
	}
	return &f, nil
}
