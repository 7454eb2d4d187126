package metrics

import (
	"slices"
)

// Pixel keys are bucketed by their top 16 bits (sign, exponent and 7 mantissa bits of the float32), then
// each bucket is radix-sorted on the low 16 bits. Bucket order is score order, so after the per-bucket sorts
// the sweep reads the buckets from the top down.
const (
	bucketBits = 16
	nBuckets   = 1 << bucketBits
	// radixMin: below this, a comparison sort beats clearing 2x256 counters.
	radixMin = 256
	// radixMax bounds the scratch buffer of one bucket (64 MiB of keys); larger buckets sort in place.
	radixMax = 1 << 24
)

// smallSet: below this many pixels one comparison sort beats the fixed cost of 65536 buckets. A variable
// so that the tests can push small cases through the bucket path too.
var smallSet = 1 << 15

type chunk struct{ lo, hi int }

// splitChunks cuts preps into at most n contiguous runs of about equal pixel counts. Each run keeps its
// images in key order and runs are scattered in order, so the order within a bucket does not depend on n.
func splitChunks(preps []*prepared, n int) []chunk {
	var total int64
	for _, p := range preps {
		total += int64(p.img.W) * int64(p.img.H)
	}
	var out []chunk
	lo := 0
	var acc int64
	for i, p := range preps {
		acc += int64(p.img.W) * int64(p.img.H)
		if acc*int64(n) >= total*int64(len(out)+1) || i == len(preps)-1 {
			out = append(out, chunk{lo, i + 1})
			lo = i + 1
		}
	}
	return out
}

// sortedSet holds the pixels of some images sorted by score, ascending: normal pixels as bare keys, defect
// pixels as key << 32 | global region id.
type sortedSet struct {
	normals []uint32
	defects []uint64
	P, N    int64
	tc      trackCounts
}

// pixelSweeps sorts the pixels of preps (in key order) and sweeps them: the overall sweep (with curves)
// and, when kinds is set, one sweep per defect kind over the normal images plus that kind. Each pixel is
// sorted once, in its source (the normal images, or one kind); a sweep runs over the stable merge of the
// sources it covers, and the sweeps run in parallel.
//
// With opt.SortBudget the sort goes one range of scores at a time, from the top, each range's sort arrays
// and merged copies within the budget; the maps are read again for each range (a streamed evaluation reads
// its files again). A group of tied scores never straddles two ranges, so the sweeps see the same groups
// in the same order and the result is the same bit for bit.
func pixelSweeps(preps []*prepared, opt Options, cfg sweepConfig, kinds bool) (*sweep, map[string]*sweep, error) {
	geo, cellOff := buildGeometry(preps)
	cfg.geo = geo
	bySource, names := sources(preps, kinds)
	var kindNames []string
	for _, n := range names {
		if n != "" {
			kindNames = append(kindNames, n)
		}
	}
	// Copies alive at once per range: the sources' arrays, and with more than one source the overall
	// merge (its pairwise rounds hold up to two copies) plus one merge per concurrent per-kind sweep.
	copies := int64(1)
	if len(names) > 1 {
		copies += 2 + int64(min(opt.Workers, len(kindNames)))
	}
	hists := make(map[string]*sortHist, len(names))
	for _, n := range names {
		idx := bySource[n]
		sub, off := make([]*prepared, len(idx)), make([]int64, len(idx))
		for j, i := range idx {
			sub[j], off[j] = preps[i], cellOff[i]
		}
		h, err := histogramPixels(sub, off, opt.Workers, opt.SortBudget > 0)
		if err != nil {
			return nil, nil, err
		}
		hists[n] = h
	}
	ranges := planRanges(hists, names, opt.SortBudget/copies)
	sets := func(r bucketRange) (map[string]*sortedSet, []*sortedSet, error) {
		m := make(map[string]*sortedSet, len(names))
		all := make([]*sortedSet, 0, len(names))
		for _, n := range names {
			st, err := hists[n].sortRange(r, opt.Workers)
			if err != nil {
				return nil, nil, err
			}
			m[n] = st
			all = append(all, st)
		}
		return m, all, nil
	}
	perKind := map[string]*sweep{}
	if len(names) == 1 {
		h := hists[names[0]]
		gs := newSweep(h.P, h.N, h.tc, cfg, true)
		for _, r := range ranges {
			_, all, err := sets(r)
			if err != nil {
				return nil, nil, err
			}
			sweepInto(gs, all[0])
		}
		gs.finish()
		for _, n := range kindNames {
			perKind[n[2:]] = gs // the kind's images are all the images
		}
		return gs, perKind, nil
	}
	// Task 0 is the overall sweep; the per-kind sweeps run beside it. Each task builds its merged arrays
	// and drops them when done, so at most Workers merged copies are alive at a time.
	sweeps := make([]*sweep, 1+len(kindNames))
	var P, N int64
	var tc trackCounts
	for i, n := range names {
		h := hists[n]
		P, N = P+h.P, N+h.N
		if i == 0 {
			tc = h.tc
		} else {
			tc = tc.plus(h.tc)
		}
	}
	sweeps[0] = newSweep(P, N, tc, cfg, true)
	g, hasNormal := hists[""]
	for t, n := range kindNames {
		k := hists[n]
		kP, kN, ktc := k.P, k.N, k.tc
		if hasNormal {
			kP, kN, ktc = g.P+kP, g.N+kN, g.tc.plus(ktc)
		}
		sweeps[t+1] = newSweep(kP, kN, ktc, cfg, false)
	}
	for _, r := range ranges {
		m, all, err := sets(r)
		if err != nil {
			return nil, nil, err
		}
		_ = parallel(len(sweeps), opt.Workers, func(t int, _ *scratch) error {
			if t == 0 {
				sweepInto(sweeps[0], mergeSets(all))
				return nil
			}
			k := m[kindNames[t-1]]
			if g, ok := m[""]; ok {
				k = mergeSets([]*sortedSet{g, k})
			}
			sweepInto(sweeps[t], k)
			return nil
		})
	}
	for _, s := range sweeps {
		s.finish()
	}
	for i, n := range kindNames {
		perKind[n[2:]] = sweeps[i+1]
	}
	return sweeps[0], perKind, nil
}

// bucketRange is the buckets [lo, hi) of one pass of a budgeted sort.
type bucketRange struct{ lo, hi int }

// planRanges cuts the buckets into ranges whose sort arrays (4 bytes per normal pixel, 8 per defect
// pixel, over every source) stay within budget bytes, from the top score down. A bucket larger than the
// budget is a range of its own. Without a budget, or with the sources not bucketed (small sets), it is one
// range over every bucket.
func planRanges(hists map[string]*sortHist, names []string, budget int64) []bucketRange {
	nb := hists[names[0]].nb
	for _, n := range names {
		if hists[n].nb != nb {
			nb = 0
		}
	}
	if budget <= 0 || nb <= 1 {
		return []bucketRange{{0, nBuckets}}
	}
	var need int64
	bytes := make([]int64, nb)
	for _, n := range names {
		h := hists[n]
		for c := range h.chunks {
			for b := 0; b < nb; b++ {
				bytes[b] += 4*int64(h.histN[c][b]) + 8*int64(h.histD[c][b])
			}
		}
	}
	for _, v := range bytes {
		need += v
	}
	if need <= budget {
		return []bucketRange{{0, nb}}
	}
	var out []bucketRange
	hi := nb
	var acc int64
	for b := nb - 1; b >= 0; b-- {
		if acc > 0 && acc+bytes[b] > budget {
			out = append(out, bucketRange{b + 1, hi})
			hi, acc = b+1, 0
		}
		acc += bytes[b]
	}
	return append(out, bucketRange{0, hi})
}

// sources groups preps (in key order) by source: the normal images (name ""), and with kinds each defect
// kind ("k:" + kind; without kinds every image is in ""). names are sorted.
func sources(preps []*prepared, kinds bool) (map[string][]int, []string) {
	bySource := map[string][]int{}
	var names []string
	for i, p := range preps {
		src := ""
		if kinds && p.img.Label == 1 {
			src = "k:" + p.img.Kind // prefixed: a kind named "" must not join the normal images
		}
		if _, ok := bySource[src]; !ok {
			names = append(names, src)
		}
		bySource[src] = append(bySource[src], i)
	}
	slices.Sort(names)
	return bySource, names
}

// mergeSets merges sorted sets pairwise, stably (on equal keys the earlier set first), so the merged order
// depends only on the order of sets.
func mergeSets(sets []*sortedSet) *sortedSet {
	for len(sets) > 1 {
		var next []*sortedSet
		for i := 0; i+1 < len(sets); i += 2 {
			a, b := sets[i], sets[i+1]
			next = append(next, &sortedSet{
				normals: mergeNormals(a.normals, b.normals),
				defects: mergeDefects(a.defects, b.defects),
				P:       a.P + b.P, N: a.N + b.N, tc: a.tc.plus(b.tc),
			})
		}
		if len(sets)%2 == 1 {
			next = append(next, sets[len(sets)-1])
		}
		sets = next
	}
	return sets[0]
}

// The merges are branch-free (the comparison feeds index arithmetic), since with interleaved scores a
// branch would be mispredicted about every other element.
func mergeNormals(a, b []uint32) []uint32 {
	out := make([]uint32, len(a)+len(b))
	i, j, o := 0, 0, 0
	for i < len(a) && j < len(b) {
		v, w := a[i], b[j]
		lt := 0
		if w < v {
			lt = 1
		}
		out[o] = min(v, w)
		j += lt
		i += 1 - lt
		o++
	}
	o += copy(out[o:], a[i:])
	copy(out[o:], b[j:])
	return out
}

// mergeDefects merges by score key only (the high half), keeping each input's order within a score.
func mergeDefects(a, b []uint64) []uint64 {
	out := make([]uint64, len(a)+len(b))
	i, j, o := 0, 0, 0
	for i < len(a) && j < len(b) {
		v, w := a[i], b[j]
		lt := 0
		e := v
		if w>>32 < v>>32 {
			lt = 1
			e = w
		}
		out[o] = e
		j += lt
		i += 1 - lt
		o++
	}
	o += copy(out[o:], a[i:])
	copy(out[o:], b[j:])
	return out
}

// sortPixels bucket-sorts the pixels of preps; cellOff[i] is the global id of the first cell of preps[i].
func sortPixels(preps []*prepared, cellOff []int64, workers int) (*sortedSet, error) {
	h, err := histogramPixels(preps, cellOff, workers, false)
	if err != nil {
		return nil, err
	}
	return h.sortRange(bucketRange{0, h.nb}, workers)
}

// sortHist is the first pass of a bucket sort: how many normal and defect pixels of each chunk of images
// fall in each bucket.
type sortHist struct {
	preps        []*prepared
	cellOff      []int64
	chunks       []chunk
	histN, histD [][]int // [chunk][bucket]
	P, N         int64
	tc           trackCounts
	nb           int
	shift        uint
}

// histogramPixels counts the pixels of preps per bucket. bucketed keeps 65536 buckets however few the
// pixels (a budgeted sort cuts its ranges on bucket bounds).
func histogramPixels(preps []*prepared, cellOff []int64, workers int, bucketed bool) (*sortHist, error) {
	h := &sortHist{preps: preps, cellOff: cellOff, tc: trackCountsOf(preps)}
	for _, p := range preps {
		h.P += p.defects
		h.N += int64(p.img.W)*int64(p.img.H) - p.defects
	}
	// shift selects the bucket of a key; with one bucket (shift 32 gives 0 for every uint32) the bucket
	// sort is a plain comparison sort.
	h.nb, h.shift = nBuckets, uint(bucketBits)
	if h.N+h.P < int64(smallSet) && !bucketed {
		h.nb, h.shift = 1, 32
	}
	nb, shift := h.nb, h.shift
	h.chunks = splitChunks(preps, workers)
	h.histN = make([][]int, len(h.chunks))
	h.histD = make([][]int, len(h.chunks))
	err := parallel(len(h.chunks), workers, func(c int, _ *scratch) error {
		hn, hd := make([]int, nb), make([]int, nb)
		for _, p := range preps[h.chunks[c].lo:h.chunks[c].hi] {
			mp, m, err := p.pixels()
			if err != nil {
				return err
			}
			if p.defects == 0 {
				for _, v := range mp {
					hn[key(v)>>shift]++
				}
				continue
			}
			for i, v := range mp {
				if m[i] {
					hd[key(v)>>shift]++
				} else {
					hn[key(v)>>shift]++
				}
			}
		}
		h.histN[c], h.histD[c] = hn, hd
		return nil
	})
	return h, err
}

// sortRange sorts the pixels in the buckets of r (reading the maps again). The set's P, N and track counts
// are those of all the pixels, as a sweep needs them.
func (h *sortHist) sortRange(r bucketRange, workers int) (*sortedSet, error) {
	preps, chunks, nb, shift := h.preps, h.chunks, h.nb, h.shift
	lo, hi := min(r.lo, nb), min(r.hi, nb)
	whole := lo == 0 && hi == nb
	// Write offsets per chunk and bucket of the range; startN/startD mark the bucket bounds.
	offN, offD := make([][]int, len(chunks)), make([][]int, len(chunks))
	for c := range chunks {
		offN[c], offD[c] = make([]int, nb), make([]int, nb)
	}
	startN, startD := make([]int, nb+1), make([]int, nb+1)
	posN, posD := 0, 0
	for b := lo; b < hi; b++ {
		startN[b], startD[b] = posN, posD
		for c := range chunks {
			offN[c][b], offD[c][b] = posN, posD
			posN += h.histN[c][b]
			posD += h.histD[c][b]
		}
	}
	startN[hi], startD[hi] = posN, posD
	normals := make([]uint32, posN)
	defects := make([]uint64, posD)
	if err := parallel(len(chunks), workers, func(c int, _ *scratch) error {
		on, od := offN[c], offD[c]
		for pi := chunks[c].lo; pi < chunks[c].hi; pi++ {
			p := preps[pi]
			mp, m, err := p.pixels()
			if err != nil {
				return err
			}
			if p.defects == 0 {
				for _, v := range mp {
					k := key(v)
					b := int(k >> shift)
					if !whole && (b < lo || b >= hi) {
						continue
					}
					normals[on[b]] = k
					on[b]++
				}
				continue
			}
			off := uint64(h.cellOff[pi])
			d := 0
			for i, v := range mp {
				k := key(v)
				b := int(k >> shift)
				if m[i] {
					if whole || (b >= lo && b < hi) {
						defects[od[b]] = uint64(k)<<32 | (off + uint64(p.defLabels[d]))
						od[b]++
					}
					d++
				} else if whole || (b >= lo && b < hi) {
					normals[on[b]] = k
					on[b]++
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	const bucketsPerTask = 256
	if nb == 1 {
		slices.Sort(normals)
		slices.Sort(defects)
	} else {
		tasks := (hi - lo + bucketsPerTask - 1) / bucketsPerTask
		_ = parallel(tasks, workers, func(t int, s *scratch) error {
			for b := lo + t*bucketsPerTask; b < min(hi, lo+(t+1)*bucketsPerTask); b++ {
				sortLow16(normals[startN[b]:startN[b+1]], &s.tmp32)
				sortLow16Hi(defects[startD[b]:startD[b+1]], &s.tmp64)
			}
			return nil
		})
	}
	return &sortedSet{normals: normals, defects: defects, P: h.P, N: h.N, tc: h.tc}, nil
}

// sweepSet sweeps a sorted set from the highest score down.
func sweepSet(st *sortedSet, cfg sweepConfig, curves bool) *sweep {
	s := newSweep(st.P, st.N, st.tc, cfg, curves)
	sweepInto(s, st)
	s.finish()
	return s
}

// sweepInto continues s over the pixels of st, all of which score below what s has seen.
func sweepInto(s *sweep, st *sortedSet) {
	normals, defects := st.normals, st.defects
	var grp []uint64
	i, j := len(normals)-1, len(defects)-1
	for i >= 0 || j >= 0 {
		// Runs of normal-only groups above the next defect score that change nothing but FP go through a
		// tight loop here instead of one step call per group (most groups of a real map are such).
		if i >= 0 && (j < 0 || normals[i] > uint32(defects[j]>>32)) {
			var floor uint32 // groups must stay above the next defect key
			if j >= 0 {
				floor = uint32(defects[j] >> 32)
			}
			quiet := s.quietUntil()
			fp, groups := s.fp, int64(0)
			// When every normal above the floor enters before the next stop (an FPR limit or a curve
			// point) and none is below the probe, they enter as one batch: its size by a search, its
			// groups by counting changes of value, instead of a pass through the loop below per group.
			lo := 0
			if j >= 0 {
				lo = firstAbove(normals[:i+1], floor)
			}
			if n := int64(i + 1 - lo); fp+n <= quiet && !(s.probeOn && !s.probed && float64(unkey(normals[lo])) < s.probeT) {
				s.quiet(n, 1+changes(normals[lo:i+1]), float64(unkey(normals[lo])))
				i = lo - 1
				continue
			}
			var last uint32
			for i >= 0 && (j < 0 || normals[i] > floor) {
				v, i0 := normals[i], i
				if s.probeOn && !s.probed && float64(unkey(v)) < s.probeT {
					s.takeProbe(fp)
				}
				for i >= 0 && normals[i] == v {
					i--
				}
				if fp+int64(i0-i) > quiet {
					i = i0 // this group needs a full step
					break
				}
				fp += int64(i0 - i)
				groups++
				last = v
			}
			if groups > 0 {
				s.quiet(fp-s.fp, groups, float64(unkey(last)))
				continue
			}
		}
		var k uint32
		switch {
		case i < 0:
			k = uint32(defects[j] >> 32)
		case j < 0:
			k = normals[i]
		default:
			k = max(normals[i], uint32(defects[j]>>32))
		}
		var dfp int64
		for i >= 0 && normals[i] == k {
			dfp++
			i--
		}
		jhi := j
		for j >= 0 && uint32(defects[j]>>32) == k {
			j--
		}
		g := defects[j+1 : jhi+1]
		if len(g) == 1 {
			s.hit(uint32(g[0]), 1)
		} else if len(g) > 1 {
			grp = enterGroup(s, g, grp)
		}
		s.step(float64(unkey(k)), int64(len(g)), dfp)
	}
}

// firstAbove returns the first index of ascending a whose key is above floor; a's last key is. It gallops
// down from the end, since the run above the next defect score is usually short.
func firstAbove(a []uint32, floor uint32) int {
	hi, step := len(a)-1, 1
	lo := hi - step
	for lo >= 0 && a[lo] > floor {
		hi, step = lo, step*2
		lo = hi - step
	}
	lo = max(lo, -1) // a[lo] <= floor, or before the start
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if a[mid] > floor {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// changes counts the places where ascending a changes value: its distinct values less one.
func changes(a []uint32) int64 {
	var c int64
	for k := 1; k < len(a); k++ {
		if a[k] != a[k-1] {
			c++
		}
	}
	return c
}

// enterGroup enters the defect pixels of one score (packed score << 32 | cell) by ascending cell, counting
// each cell's pixels, on a sorted copy (the set may be shared with a concurrent sweep).
func enterGroup(s *sweep, g []uint64, buf []uint64) []uint64 {
	buf = append(buf[:0], g...)
	slices.Sort(buf) // one score: the order of the cells
	for a := 0; a < len(buf); {
		b := a + 1
		for b < len(buf) && buf[b] == buf[a] {
			b++
		}
		s.hit(uint32(buf[a]), int64(b-a))
		a = b
	}
	return buf
}

// sortLow16 sorts keys that share their top 16 bits: a stable two-pass LSD radix sort on the low 16 bits.
func sortLow16(a []uint32, tmp *[]uint32) {
	n := len(a)
	if n < 2 {
		return
	}
	if n < radixMin || n > radixMax {
		slices.Sort(a)
		return
	}
	var c [2][256]int
	for _, v := range a {
		c[0][v&0xff]++
		c[1][(v>>8)&0xff]++
	}
	if cap(*tmp) < n {
		*tmp = make([]uint32, n)
	}
	src, dst := a, (*tmp)[:n]
	for pass := 0; pass < 2; pass++ {
		shift := uint(8 * pass)
		cnt := &c[pass]
		if cnt[(a[0]>>shift)&0xff] == n {
			continue // one digit value: the pass would not move anything
		}
		pos := 0
		for d := range cnt {
			cnt[d], pos = pos, pos+cnt[d]
		}
		for _, v := range src {
			d := (v >> shift) & 0xff
			dst[cnt[d]] = v
			cnt[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

// sortLow16Hi sorts packed defect keys (score key << 32 | region) that share their top 16 bits by the
// score alone, stably: bits 32..47 by a two-pass LSD radix sort.
func sortLow16Hi(a []uint64, tmp *[]uint64) {
	n := len(a)
	if n < 2 {
		return
	}
	if n < radixMin || n > radixMax {
		// Full-key order is also a deterministic order within ties.
		slices.Sort(a)
		return
	}
	var c [2][256]int
	for _, v := range a {
		c[0][(v>>32)&0xff]++
		c[1][(v>>40)&0xff]++
	}
	if cap(*tmp) < n {
		*tmp = make([]uint64, n)
	}
	src, dst := a, (*tmp)[:n]
	for pass := 0; pass < 2; pass++ {
		shift := uint(32 + 8*pass)
		cnt := &c[pass]
		if cnt[(a[0]>>shift)&0xff] == n {
			continue
		}
		pos := 0
		for d := range cnt {
			cnt[d], pos = pos, pos+cnt[d]
		}
		for _, v := range src {
			d := (v >> shift) & 0xff
			dst[cnt[d]] = v
			cnt[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}
