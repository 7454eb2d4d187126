package metrics

import (
	"fmt"
	"math"
	"math/bits"
	"slices"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// The engine orders pixels by key(float32). Float64 maps are ranked by replacing each value with the float32
// whose key is codeBase + its rank among the distinct values: ranks become consecutive keys of finite
// float32 values, so the engine's order on the codes is the order of the float64 values, whatever their
// range or spacing. skipKey is left out because key never produces it (unkey gives -0, whose key is +0's).
const (
	codeBase = 0x00800000 // key of -MaxFloat32, the lowest finite float32
	skipKey  = 0x7fffffff
	codeTop  = 0xff7fffff // key of MaxFloat32
)

// MaxDistinct64 is the most distinct pixel values an evaluation with float64 maps can rank: one per finite
// float32 key. It is below MaxPixels, so it can refuse an evaluation that MaxPixels admits.
const MaxDistinct64 int64 = codeTop - codeBase

// codeOf is the code of rank r, 0 <= r < MaxDistinct64.
func codeOf(r int) float32 {
	k := codeBase + uint32(r)
	if k >= skipKey {
		k++
	}
	return unkey(k)
}

// rankOf inverts codeOf.
func rankOf(code float32) int {
	k := key(code)
	r := int(k - codeBase)
	if k > skipKey {
		r--
	}
	return r
}

// key64 maps a finite float64 to a uint64 whose unsigned order is the order of the values; -0 and +0 share
// one key, as key does for float32.
func key64(v float64) uint64 {
	if v == 0 {
		v = 0
	}
	b := math.Float64bits(v)
	if b&(1<<63) != 0 {
		return ^b
	}
	return b | 1<<63
}

// unkey64 inverts key64.
func unkey64(k uint64) float64 {
	if k&(1<<63) != 0 {
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}

// codeBook holds the distinct pixel values of an evaluation as ascending key64 keys; keys[r] has the code
// codeOf(r). A rank is found by a binary search inside one bucket of an index, since a search over all keys
// (hundreds of MB for large sets) misses the cache at every step.
type codeBook struct {
	keys []uint64
	nb   uint64 // buckets
	// A bucket is a range of values (lin: scores spread evenly, as probabilities) or of keys (otherwise:
	// scores spread over orders of magnitude), whichever spreads the keys more evenly.
	lin         bool
	vmin, scale float64
	kmin        uint64
	shift       uint
	// start[b] is the first rank whose key is in bucket b or above.
	start []uint32
}

// newCodeBook indexes keys (ascending, distinct, at most MaxDistinct64) with about one bucket per two keys:
// 2 bytes per distinct value. Where keys crowd into some buckets the search there only grows towards a plain
// binary search.
func newCodeBook(keys []uint64) *codeBook {
	c := &codeBook{keys: keys, kmin: keys[0], nb: uint64(1 + len(keys)/2)}
	for (keys[len(keys)-1]-c.kmin)>>c.shift >= c.nb {
		c.shift++
	}
	keyCost := c.cost()
	c.vmin = unkey64(keys[0])
	// Only with a finite scale: a span that overflows, or one so small that nb/span does, would make buckets
	// of NaN.
	span := unkey64(keys[len(keys)-1]) - c.vmin
	if scale := float64(c.nb) / span; span > 0 && !math.IsInf(span, 0) && !math.IsInf(scale, 0) {
		c.lin, c.scale = true, scale
		if c.cost() >= keyCost {
			c.lin = false
		}
	}
	c.index()
	return c
}

// index builds start for the bucketing chosen.
func (c *codeBook) index() {
	c.start = make([]uint32, c.nb+1)
	b := uint64(0)
	for r, k := range c.keys {
		for q := c.bucket(k); b <= q; b++ {
			c.start[b] = uint32(r)
		}
	}
	for ; b <= c.nb; b++ {
		c.start[b] = uint32(len(c.keys))
	}
}

// bucket is monotone in k, so the keys of a bucket are contiguous.
func (c *codeBook) bucket(k uint64) uint64 {
	if c.lin {
		return min(uint64((unkey64(k)-c.vmin)*c.scale), c.nb-1)
	}
	return (k - c.kmin) >> c.shift
}

// cost is the work of looking every key up once with the current bucketing: the sum over buckets of keys
// times search steps.
func (c *codeBook) cost() int64 {
	var total int64
	var n int64
	cur := c.bucket(c.keys[0])
	for _, k := range c.keys {
		if b := c.bucket(k); b != cur {
			total += n * int64(bits.Len64(uint64(n)))
			cur, n = b, 0
		}
		n++
	}
	return total + n*int64(bits.Len64(uint64(n)))
}

// rankBatch keys are looked up together: each step touches the index or the keys of the whole batch
// before the next step reads them, so that the cache misses of a batch overlap instead of queueing one
// after the other (the index and the keys of a large set are far larger than the caches).
const rankBatch = 128

// ranks writes the codes of the ranks of ks (each one of the keys) to codes.
func (c *codeBook) ranks(ks []uint64, codes []float32) {
	var lo, hi [rankBatch]uint32
	var first [rankBatch]uint64
	for j, k := range ks {
		b := c.bucket(k)
		lo[j], hi[j] = c.start[b], c.start[b+1]
	}
	for j := range ks {
		first[j] = c.keys[lo[j]] // lo < len(keys), since ks are keys
	}
	for j, k := range ks {
		l, h := int(lo[j]), int(hi[j])
		if first[j] == k {
			h = l // most buckets hold a key or two: no search
		}
		for l < h {
			m := int(uint(l+h) >> 1)
			if c.keys[m] < k {
				l = m + 1
			} else {
				h = m
			}
		}
		codes[j] = codeOf(l)
	}
}

// encode replaces the map of every image (float32 or float64) by the codes of its values in the ranking of
// all the pixel values of preps; images, labels and image scores stay as they are. Memory: the keys of all
// pixels and one buffer as large (16 bytes per pixel) while they are sorted and merged; then the distinct
// keys, their index and the codes (at most 14 bytes per pixel) for the rest of the evaluation.
func encode(preps []*prepared, workers int) ([]*prepared, *codeBook, error) {
	off := make([]int, len(preps)+1)
	for i, p := range preps {
		off[i+1] = off[i] + p.img.W*p.img.H
	}
	all := make([]uint64, off[len(preps)])
	buf := make([]uint64, len(all))
	// Each chunk of images is keyed and sorted on its own worker, then the sorted runs are merged.
	chunks := splitChunks(preps, workers)
	runs := make([]run, len(chunks))
	_ = parallel(len(chunks), workers, func(c int, _ *scratch) error {
		for i := chunks[c].lo; i < chunks[c].hi; i++ {
			dst := all[off[i]:off[i+1]]
			if m := preps[i].img.Map64; m != nil {
				for j, v := range m {
					dst[j] = key64(v)
				}
			} else {
				for j, v := range preps[i].img.Map {
					dst[j] = key64(float64(v))
				}
			}
		}
		lo, hi := off[chunks[c].lo], off[chunks[c].hi]
		sortKeys(all[lo:hi], buf[lo:hi])
		runs[c] = run{lo, hi, len(slices.Compact(all[lo:hi]))}
		return nil
	})
	keys := mergeRuns(all, buf, runs)
	all, buf = nil, nil
	if int64(len(keys)) > MaxDistinct64 {
		return nil, nil, fmt.Errorf("evaluate: %d distinct pixel scores, more than the %d that float64 maps can be ranked by", len(keys), MaxDistinct64)
	}
	cb := newCodeBook(keys)
	out := make([]*prepared, len(preps))
	_ = parallel(len(preps), workers, func(i int, _ *scratch) error {
		p := preps[i]
		codes := make([]float32, p.img.W*p.img.H)
		var ks [rankBatch]uint64
		for lo := 0; lo < len(codes); lo += rankBatch {
			n := min(rankBatch, len(codes)-lo)
			if m := p.img.Map64; m != nil {
				for j, v := range m[lo : lo+n] {
					ks[j] = key64(v)
				}
			} else {
				for j, v := range p.img.Map[lo : lo+n] {
					ks[j] = key64(float64(v))
				}
			}
			cb.ranks(ks[:n], codes[lo:lo+n])
		}
		im := *p.img
		im.Map, im.Map64 = codes, nil
		q := *p
		q.img = &im
		out[i] = &q
		return nil
	})
	return out, cb, nil
}

// sortKeys sorts a by an LSD radix sort on its bytes, with tmp (as long) as scratch. A pass whose byte is
// the same in every key is skipped: the high bytes of scores from one range mostly are.
func sortKeys(a, tmp []uint64) {
	n := len(a)
	if n < 256 {
		slices.Sort(a)
		return
	}
	var c [8][256]int
	for _, v := range a {
		c[0][byte(v)]++
		c[1][byte(v>>8)]++
		c[2][byte(v>>16)]++
		c[3][byte(v>>24)]++
		c[4][byte(v>>32)]++
		c[5][byte(v>>40)]++
		c[6][byte(v>>48)]++
		c[7][byte(v>>56)]++
	}
	src, dst := a, tmp[:n]
	for d := range c {
		shift := uint(8 * d)
		cnt := &c[d]
		if cnt[byte(a[0]>>shift)] == n {
			continue
		}
		pos := 0
		for i := range cnt {
			cnt[i], pos = pos, pos+cnt[i]
		}
		for _, v := range src {
			b := byte(v >> shift)
			dst[cnt[b]] = v
			cnt[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

// run is a sorted run of distinct keys at buf[lo:lo+n] inside its region buf[lo:hi].
type run struct{ lo, hi, n int }

// mergeRuns merges the runs of all, pairwise and level by level between all and buf (as long), each merged
// run written at the start of the region of its two inputs, which it cannot outgrow. It returns the
// distinct keys, ascending.
func mergeRuns(all, buf []uint64, runs []run) []uint64 {
	src, dst := all, buf
	for len(runs) > 1 {
		next := make([]run, 0, (len(runs)+1)/2)
		for i := 0; i+1 < len(runs); i += 2 {
			a, b := runs[i], runs[i+1]
			n := mergeCompact(dst[a.lo:b.hi], src[a.lo:a.lo+a.n], src[b.lo:b.lo+b.n])
			next = append(next, run{a.lo, b.hi, n})
		}
		if len(runs)%2 == 1 {
			r := runs[len(runs)-1]
			copy(dst[r.lo:], src[r.lo:r.lo+r.n])
			next = append(next, r)
		}
		runs = next
		src, dst = dst, src
	}
	out := src[runs[0].lo : runs[0].lo+runs[0].n]
	if 2*len(out) < cap(out) {
		// Many ties: keep only what the distinct keys need, for the rest of the evaluation.
		out = slices.Clone(out)
	}
	return out
}

// mergeCompact merges two ascending slices of distinct keys into out, dropping the keys they share, and
// returns the number written.
func mergeCompact(out, a, b []uint64) int {
	i, j, o := 0, 0, 0
	// Branch-free, as mergeNormals: with interleaved runs a branch would be mispredicted half the time.
	for i < len(a) && j < len(b) {
		v, w := a[i], b[j]
		di, dj := 0, 0
		if v <= w {
			di = 1
		}
		if w <= v {
			dj = 1
		}
		out[o] = min(v, w)
		i += di
		j += dj
		o++
	}
	o += copy(out[o:], a[i:])
	o += copy(out[o:], b[j:])
	return o
}

// value returns the pixel value that a threshold in code space stands for.
func (c *codeBook) value(code float64) float64 { return unkey64(c.keys[rankOf(float32(code))]) }

// decodeResult translates the pixel thresholds of res from codes back to pixel values. Image thresholds
// are image scores, which encode keeps, so they stay.
func (c *codeBook) decodeResult(res *sm.Result) {
	if t := res.PixelF1MaxThreshold; t != nil {
		res.PixelF1MaxThreshold = ptr(c.value(*t))
	}
	if res.Curves == nil {
		return
	}
	for _, cv := range []*sm.Curve{&res.Curves.PixelROC, &res.Curves.PixelPR, &res.Curves.PixelPRO} {
		for i, t := range cv.Threshold {
			if t != nil {
				// A new pointer: a curve may share pointers with another and must not be decoded twice.
				cv.Threshold[i] = ptr(c.value(*t))
			}
		}
	}
}

// probe translates a pixel threshold t into code space: the code of the lowest distinct value >= t, so
// that a code is >= the result exactly when its value is >= t; +Inf when no value reaches t.
func (c *codeBook) probe(t float64) float64 {
	if math.IsInf(t, -1) {
		t = -math.MaxFloat64
	}
	k := key64(t)
	r, _ := slices.BinarySearch(c.keys, k)
	if r >= len(c.keys) {
		return math.Inf(1)
	}
	return float64(codeOf(r))
}
