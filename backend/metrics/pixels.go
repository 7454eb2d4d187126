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
func pixelSweeps(preps []*prepared, opt Options, cfg sweepConfig, kinds bool) (*sweep, map[string]*sweep, error) {
	geo, cellOff := buildGeometry(preps)
	cfg.geo = geo
	bySource, names := sources(preps, kinds)
	sets := make(map[string]*sortedSet, len(names))
	all := make([]*sortedSet, 0, len(names))
	for _, n := range names {
		idx := bySource[n]
		sub, off := make([]*prepared, len(idx)), make([]int64, len(idx))
		for j, i := range idx {
			sub[j], off[j] = preps[i], cellOff[i]
		}
		var err error
		if sets[n], err = sortPixels(sub, off, opt.Workers); err != nil {
			return nil, nil, err
		}
		all = append(all, sets[n])
	}
	var kindNames []string
	for _, n := range names {
		if n != "" {
			kindNames = append(kindNames, n)
		}
	}
	perKind := map[string]*sweep{}
	if len(names) == 1 {
		gs := sweepSet(all[0], cfg, true)
		for _, n := range kindNames {
			perKind[n[2:]] = gs // the kind's images are all the images
		}
		return gs, perKind, nil
	}
	// Task 0 is the overall sweep; the per-kind sweeps run beside it. Each task builds its merged arrays
	// and drops them when done, so at most Workers merged copies are alive at a time.
	sweeps := make([]*sweep, 1+len(kindNames))
	_ = parallel(len(sweeps), opt.Workers, func(t int, _ *scratch) error {
		if t == 0 {
			sweeps[0] = sweepSet(mergeSets(all), cfg, true)
			return nil
		}
		k := sets[kindNames[t-1]]
		if g, ok := sets[""]; ok {
			k = mergeSets([]*sortedSet{g, k})
		}
		sweeps[t] = sweepSet(k, cfg, false)
		return nil
	})
	for i, n := range kindNames {
		perKind[n[2:]] = sweeps[i+1]
	}
	return sweeps[0], perKind, nil
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
	var P, N int64
	for _, p := range preps {
		P += p.defects
		N += int64(p.img.W)*int64(p.img.H) - p.defects
	}
	// shift selects the bucket of a key; with one bucket (shift 32 gives 0 for every uint32) the bucket
	// sort is a plain comparison sort.
	nb, shift := nBuckets, uint(bucketBits)
	if N+P < int64(smallSet) {
		nb, shift = 1, 32
	}
	chunks := splitChunks(preps, workers)
	histN := make([][]int, len(chunks))
	histD := make([][]int, len(chunks))
	if err := parallel(len(chunks), workers, func(c int, _ *scratch) error {
		hn, hd := make([]int, nb), make([]int, nb)
		for _, p := range preps[chunks[c].lo:chunks[c].hi] {
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
		histN[c], histD[c] = hn, hd
		return nil
	}); err != nil {
		return nil, err
	}
	// Turn the histograms into write offsets per chunk; startN/startD mark the bucket bounds.
	startN, startD := make([]int, nb+1), make([]int, nb+1)
	posN, posD := 0, 0
	for b := 0; b < nb; b++ {
		startN[b], startD[b] = posN, posD
		for c := range chunks {
			cn, cd := histN[c][b], histD[c][b]
			histN[c][b], histD[c][b] = posN, posD
			posN += cn
			posD += cd
		}
	}
	startN[nb], startD[nb] = posN, posD
	normals := make([]uint32, N)
	defects := make([]uint64, P)
	if err := parallel(len(chunks), workers, func(c int, _ *scratch) error {
		on, od := histN[c], histD[c]
		for pi := chunks[c].lo; pi < chunks[c].hi; pi++ {
			p := preps[pi]
			mp, m, err := p.pixels()
			if err != nil {
				return err
			}
			if p.defects == 0 {
				for _, v := range mp {
					k := key(v)
					b := k >> shift
					normals[on[b]] = k
					on[b]++
				}
				continue
			}
			off := uint64(cellOff[pi])
			d := 0
			for i, v := range mp {
				k := key(v)
				b := k >> shift
				if m[i] {
					defects[od[b]] = uint64(k)<<32 | (off + uint64(p.defLabels[d]))
					od[b]++
					d++
				} else {
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
		_ = parallel(nBuckets/bucketsPerTask, workers, func(t int, s *scratch) error {
			for b := t * bucketsPerTask; b < (t+1)*bucketsPerTask; b++ {
				sortLow16(normals[startN[b]:startN[b+1]], &s.tmp32)
				sortLow16Hi(defects[startD[b]:startD[b+1]], &s.tmp64)
			}
			return nil
		})
	}

	return &sortedSet{normals: normals, defects: defects, P: P, N: N, tc: trackCountsOf(preps)}, nil
}

// sweepSet sweeps a sorted set from the highest score down.
func sweepSet(st *sortedSet, cfg sweepConfig, curves bool) *sweep {
	s := newSweep(st.P, st.N, st.tc, cfg, curves)
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
	s.finish()
	return s
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
