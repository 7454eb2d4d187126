package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// State is the exact metric state of a set of images: everything the result depends on, and nothing
// more. For each source of pixels (the normal images, and each defect kind) it holds a histogram over the
// distinct pixel values: how many normal pixels have the value and, per ground-truth cell (a region, or
// the part of a region inside the same LOCO mask files), how many of its pixels do; besides, one record
// per image (key, kind, label, score, region areas, saturation regions, counts at the pixel threshold).
//
// Merging states of disjoint image sets adds the histograms (counts are integers) and renumbers the cells
// in key order of the images, so the merged state is the state of the union, whatever the split; and the
// result of a state is a function of the state alone, the same sweep as Compute over the same groups of
// tied scores in the same order, with every PRO increment summed in one canonical order (by cell). Hence
// Merge(StateOf(A), StateOf(B)).Result() is bit for bit Compute(A and B).
//
// Its size is the number of distinct values times the sources (about 12 bytes each in memory, 2 to 5 in a
// file): a few kilobytes for 8-bit or float16 maps however many images there are, and at most a few bytes
// per pixel for float32 maps whose values are all distinct. With Options.Detail the state also keeps,
// per image, the histogram of its normal pixels (for the per-image table's false positives at the F1-max
// threshold), and its own pixel AP.
type State struct {
	opt    Options
	images []*prepared // sorted by key; img holds the record fields only, no pixels
	src    map[string]*hist
	// Detail only: per image, its pixel AP and the histogram of its normal pixels.
	ap  []*float64
	own []hist
	// Notes are the warnings of whoever loaded the images (see Note).
	Notes []Note
}

// Note is a warning of the loader that made a state, kept with it so that a merged state prints the same
// warnings as one run over all images: notes print after the metric warnings, ordered by Order (then
// Text), and equal notes (the dataset's own warnings, seen by every part) print once.
type Note struct {
	Order string `json:"order"`
	Text  string `json:"text"`
}

// ComposeNotes orders and deduplicates notes into warnings.
func ComposeNotes(notes []Note) []string {
	ns := slices.Clone(notes)
	slices.SortFunc(ns, func(a, b Note) int {
		if c := strings.Compare(a.Order, b.Order); c != 0 {
			return c
		}
		return strings.Compare(a.Text, b.Text)
	})
	ns = slices.Compact(ns)
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Text
	}
	return out
}

// hist is the histogram of one source: normal pixels by value key (key64 of the value, ascending,
// distinct), and defect pixels by (value key, cell), ascending by key then cell.
type hist struct {
	nk []uint64
	nc []uint64
	dk []uint64
	dc []uint32
	dn []uint64
}

func (h *hist) counts() (P, N int64) {
	for _, c := range h.nc {
		N += int64(c)
	}
	for _, c := range h.dn {
		P += int64(c)
	}
	return
}

// sourceName is the source of an image: "" for normal images, "k:KIND" for a defect kind.
func sourceName(p *prepared) string {
	if p.img.Label == 1 {
		return "k:" + p.img.Kind
	}
	return ""
}

// StateOf computes the exact metric state of images under opt (the options fix the limits, the
// thresholds and whether the per-image table is kept; Merge refuses states of different options).
func StateOf(images []Image, opt Options) (*State, error) {
	opt, err := opt.normalized()
	if err != nil {
		return nil, err
	}
	ptrs := make([]*Image, len(images))
	for i := range images {
		ptrs[i] = &images[i]
	}
	preps, err := prepareAll(ptrs, opt)
	if err != nil {
		return nil, err
	}
	return stateOfPrepared(preps, opt)
}

func stateOfPrepared(preps []*prepared, opt Options) (*State, error) {
	// The value of a sorted key: float32 keys, or codes of the ranks of float64 values.
	preps, codes, err := ordered(preps, opt)
	if err != nil {
		return nil, err
	}
	toKey := func(k uint32) uint64 { return key64(float64(unkey(k))) }
	if codes != nil {
		toKey = func(k uint32) uint64 { return codes.keys[rankOf(unkey(k))] }
	}
	st := &State{opt: opt, src: map[string]*hist{}}
	_, cellOff := buildGeometry(preps)
	bySource, names := sources(preps, true)
	for _, n := range names {
		idx := bySource[n]
		sub, off := make([]*prepared, len(idx)), make([]int64, len(idx))
		for j, i := range idx {
			sub[j], off[j] = preps[i], cellOff[i]
		}
		set, err := sortPixels(sub, off, opt.Workers)
		if err != nil {
			return nil, err
		}
		st.src[n] = histOf(set, toKey)
	}
	if opt.Detail {
		st.ap = make([]*float64, len(preps))
		st.own = make([]hist, len(preps))
		if err := parallel(len(preps), opt.Workers, func(i int, _ *scratch) error {
			p := preps[i]
			if p.load != nil {
				mp, mask, err := p.pixels()
				if err != nil {
					return err
				}
				q := *p
				im := *p.img
				im.Map, im.Mask = mp, mask
				q.img, q.load = &im, nil
				p = &q
			}
			if p.defects > 0 {
				var err error
				if st.ap[i], err = ownAP(p); err != nil {
					return err
				}
			}
			mp, mask, err := p.pixels()
			if err != nil {
				return err
			}
			var keys []uint64
			for j, v := range mp {
				if mask == nil || !mask[j] {
					keys = append(keys, toKey(key(v)))
				}
			}
			slices.Sort(keys)
			st.own[i] = hist{}
			for a := 0; a < len(keys); {
				b := a + 1
				for b < len(keys) && keys[b] == keys[a] {
					b++
				}
				st.own[i].nk = append(st.own[i].nk, keys[a])
				st.own[i].nc = append(st.own[i].nc, uint64(b-a))
				a = b
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	st.images = make([]*prepared, len(preps))
	for i, p := range preps {
		st.images[i] = record(p)
	}
	return st, nil
}

// record keeps what a state needs of a prepared image: no pixels.
func record(p *prepared) *prepared {
	img := &Image{Key: p.img.Key, Kind: p.img.Kind, Label: p.img.Label, W: p.img.W, H: p.img.H}
	return &prepared{img: img, score: p.score, maxScore: p.maxScore, defects: p.defects, areas: p.areas,
		cellRegion: p.cellRegion, cellParts: p.cellParts, partSat: p.partSat, segTP: p.segTP, segFP: p.segFP}
}

// histOf run-length encodes a sorted set; toKey maps its keys to value keys (order-preserving).
func histOf(s *sortedSet, toKey func(uint32) uint64) *hist {
	h := &hist{}
	for a := 0; a < len(s.normals); {
		b := a + 1
		for b < len(s.normals) && s.normals[b] == s.normals[a] {
			b++
		}
		h.nk = append(h.nk, toKey(s.normals[a]))
		h.nc = append(h.nc, uint64(b-a))
		a = b
	}
	d := slices.Clone(s.defects)
	slices.Sort(d) // by key, then cell
	for a := 0; a < len(d); {
		b := a + 1
		for b < len(d) && d[b] == d[a] {
			b++
		}
		h.dk = append(h.dk, toKey(uint32(d[a]>>32)))
		h.dc = append(h.dc, uint32(d[a]))
		h.dn = append(h.dn, uint64(b-a))
		a = b
	}
	return h
}

// compatible reports whether two states were made under the same evaluation options.
func (o Options) compatible(p Options) error {
	la, pa := o.limits()
	lb, pb := p.limits()
	eqp := func(a, b *float64) bool {
		return (a == nil) == (b == nil) && (a == nil || math.Float64bits(*a) == math.Float64bits(*b))
	}
	switch {
	case !slices.Equal(la, lb) || la[pa] != lb[pb]:
		return fmt.Errorf("FPR limits %v (primary %v) and %v (primary %v)", la, la[pa], lb, lb[pb])
	case !eqp(o.Threshold, p.Threshold) || o.ThresholdSource != p.ThresholdSource || !eqp(o.ImageThreshold, p.ImageThreshold):
		return errors.New("different thresholds")
	case o.Detail != p.Detail || o.NoPerKind != p.NoPerKind:
		return errors.New("different detail options")
	}
	return nil
}

// Options returns the options the state was made with.
func (st *State) Options() Options { return st.opt }

// Images returns the number of images of the state.
func (st *State) Images() int { return len(st.images) }

// Merge merges states of disjoint image sets made under the same options.
func Merge(states ...*State) (*State, error) {
	if len(states) == 0 {
		return nil, errors.New("merge: no states")
	}
	opt := states[0].opt
	for i, s := range states[1:] {
		if err := opt.compatible(s.opt); err != nil {
			return nil, fmt.Errorf("merge: state %d was made with other options than state 1: %w", i+2, err)
		}
	}
	// Images in key order, and where each state's images went.
	type ref struct{ s, i int }
	var refs []ref
	for si, s := range states {
		for i := range s.images {
			refs = append(refs, ref{si, i})
		}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		return strings.Compare(states[a.s].images[a.i].img.Key, states[b.s].images[b.i].img.Key)
	})
	out := &State{opt: opt, src: map[string]*hist{}}
	newIdx := make([][]int, len(states))
	for si, s := range states {
		newIdx[si] = make([]int, len(s.images))
	}
	for n, r := range refs {
		p := states[r.s].images[r.i]
		if n > 0 && p.img.Key == out.images[n-1].img.Key {
			return nil, fmt.Errorf("merge: image %q is in two states", p.img.Key)
		}
		out.images = append(out.images, p)
		newIdx[r.s][r.i] = n
		if opt.Detail {
			out.ap = append(out.ap, states[r.s].ap[r.i])
			out.own = append(out.own, states[r.s].own[r.i])
		}
	}
	// Cells: old global id -> new global id.
	_, newOff := buildGeometry(out.images)
	remap := make([][]uint32, len(states))
	for si, s := range states {
		_, off := buildGeometry(s.images)
		total := 0
		for _, p := range s.images {
			total += p.cells()
		}
		remap[si] = make([]uint32, total)
		for i, p := range s.images {
			for c := range p.cells() {
				remap[si][off[i]+int64(c)] = uint32(newOff[newIdx[si][i]] + int64(c))
			}
		}
	}
	names := map[string]bool{}
	for _, s := range states {
		for n := range s.src {
			names[n] = true
		}
		out.Notes = append(out.Notes, s.Notes...)
	}
	for n := range names {
		var parts []*hist
		for si, s := range states {
			if h, ok := s.src[n]; ok {
				parts = append(parts, remapHist(h, remap[si]))
			}
		}
		out.src[n] = mergeHists(parts)
	}
	return out, nil
}

// remapHist renumbers the cells of h and restores the (key, cell) order.
func remapHist(h *hist, m []uint32) *hist {
	out := &hist{nk: h.nk, nc: h.nc, dk: h.dk, dn: slices.Clone(h.dn), dc: make([]uint32, len(h.dc))}
	out.dk = slices.Clone(h.dk)
	for i, c := range h.dc {
		out.dc[i] = m[c]
	}
	// Within one key the cells may now be out of order (renumbering keeps each state's own order, but
	// the key order of images is per state): sort each run of equal keys.
	for a := 0; a < len(out.dk); {
		b := a + 1
		for b < len(out.dk) && out.dk[b] == out.dk[a] {
			b++
		}
		if b-a > 1 {
			idx := make([]int, b-a)
			for i := range idx {
				idx[i] = a + i
			}
			slices.SortFunc(idx, func(x, y int) int { return int(int64(out.dc[x]) - int64(out.dc[y])) })
			dc, dn := make([]uint32, b-a), make([]uint64, b-a)
			for i, j := range idx {
				dc[i], dn[i] = out.dc[j], out.dn[j]
			}
			copy(out.dc[a:b], dc)
			copy(out.dn[a:b], dn)
		}
		a = b
	}
	return out
}

// mergeHists adds histograms: normal counts of equal keys add up; defect entries interleave by (key,
// cell) (an image, hence a cell, is in one part only).
func mergeHists(parts []*hist) *hist {
	for len(parts) > 1 {
		var next []*hist
		for i := 0; i+1 < len(parts); i += 2 {
			next = append(next, merge2(parts[i], parts[i+1]))
		}
		if len(parts)%2 == 1 {
			next = append(next, parts[len(parts)-1])
		}
		parts = next
	}
	return parts[0]
}

func merge2(a, b *hist) *hist {
	out := &hist{nk: make([]uint64, 0, len(a.nk)+len(b.nk)), nc: make([]uint64, 0, len(a.nk)+len(b.nk))}
	i, j := 0, 0
	for i < len(a.nk) || j < len(b.nk) {
		switch {
		case j == len(b.nk) || (i < len(a.nk) && a.nk[i] < b.nk[j]):
			out.nk, out.nc = append(out.nk, a.nk[i]), append(out.nc, a.nc[i])
			i++
		case i == len(a.nk) || b.nk[j] < a.nk[i]:
			out.nk, out.nc = append(out.nk, b.nk[j]), append(out.nc, b.nc[j])
			j++
		default:
			out.nk, out.nc = append(out.nk, a.nk[i]), append(out.nc, a.nc[i]+b.nc[j])
			i++
			j++
		}
	}
	n := len(a.dk) + len(b.dk)
	out.dk, out.dc, out.dn = make([]uint64, 0, n), make([]uint32, 0, n), make([]uint64, 0, n)
	i, j = 0, 0
	for i < len(a.dk) || j < len(b.dk) {
		if j == len(b.dk) || (i < len(a.dk) && (a.dk[i] < b.dk[j] || (a.dk[i] == b.dk[j] && a.dc[i] < b.dc[j]))) {
			out.dk, out.dc, out.dn = append(out.dk, a.dk[i]), append(out.dc, a.dc[i]), append(out.dn, a.dn[i])
			i++
		} else {
			out.dk, out.dc, out.dn = append(out.dk, b.dk[j]), append(out.dc, b.dc[j]), append(out.dn, b.dn[j])
			j++
		}
	}
	return out
}

// Result evaluates the state: the same result as Compute on its images, bit for bit.
func (st *State) Result() (*sm.Result, error) {
	if len(st.images) == 0 {
		return nil, errors.New("evaluate: no images")
	}
	opt := st.opt
	preps := st.images
	geo, _ := buildGeometry(preps)
	lims, primary := opt.limits()
	cfg := sweepConfig{lims: lims, primary: primary, sizes: opt.Detail, probe: opt.Threshold, geo: geo}
	hasParts := slices.ContainsFunc(preps, func(p *prepared) bool { return p.partSat != nil })
	bySource, _ := sources(preps, true)
	tcs := map[string]trackCounts{}
	for n, idx := range bySource {
		sub := make([]*prepared, len(idx))
		for j, i := range idx {
			sub[j] = preps[i]
		}
		tcs[n] = trackCountsOf(sub)
	}
	names := make([]string, 0, len(st.src))
	for n := range st.src {
		names = append(names, n)
	}
	slices.Sort(names)
	var all []*hist
	var tcAll trackCounts
	for _, n := range names {
		all = append(all, st.src[n])
		tcAll = tcAll.plus(tcs[n])
	}
	kinds := !opt.NoPerKind || hasParts
	var kindNames []string
	if len(names) > 1 && kinds {
		for _, n := range names {
			if n != "" {
				kindNames = append(kindNames, n)
			}
		}
	}
	sweeps := make([]*sweep, 1+len(kindNames))
	_ = parallel(len(sweeps), opt.Workers, func(t int, _ *scratch) error {
		if t == 0 {
			sweeps[0] = sweepHist(mergeHists(all), tcAll, cfg, true)
			return nil
		}
		n := kindNames[t-1]
		h, tc := st.src[n], tcs[n]
		if g, ok := st.src[""]; ok {
			h, tc = mergeHists([]*hist{g, h}), tc.plus(tcs[""])
		}
		sweeps[t] = sweepHist(h, tc, cfg, false)
		return nil
	})
	perKind := map[string]*sweep{}
	for i, n := range kindNames {
		perKind[n[2:]] = sweeps[i+1]
	}
	if len(names) == 1 && kinds && names[0] != "" {
		perKind[names[0][2:]] = sweeps[0] // one source: the kind's images are all the images, as pixelSweeps has it
	}
	var covered [][]int64
	if opt.Detail {
		// The per-image table shows each region's coverage at the pixel F1-max threshold.
		thr := math.Inf(1)
		if _, t := sweeps[0].f1(); t != nil {
			thr = *t
		}
		covered = st.coverage(thr)
	}
	return assemble(preps, opt, sweeps[0], perKind, hasParts, func(thr float64, i int) (sm.ImageDetail, error) {
		return st.detail(i, thr, covered), nil
	})
}

// coverage counts, per image and region, the pixels at or above thr.
func (st *State) coverage(thr float64) [][]int64 {
	out := make([][]int64, len(st.images))
	cellImg := make([]int32, 0)
	cellLocal := make([]int32, 0)
	for i, p := range st.images {
		out[i] = make([]int64, len(p.areas))
		for c := range p.cells() {
			cellImg, cellLocal = append(cellImg, int32(i)), append(cellLocal, int32(c))
		}
	}
	for _, h := range st.src {
		for j, k := range h.dk {
			if unkey64(k) >= thr {
				c := h.dc[j]
				i := cellImg[c]
				p := st.images[i]
				r := cellLocal[c]
				if p.cellRegion != nil {
					r = p.cellRegion[r]
				}
				out[i][r] += int64(h.dn[j])
			}
		}
	}
	return out
}

// detail is the per-image row of image i at threshold thr.
func (st *State) detail(i int, thr float64, covered [][]int64) sm.ImageDetail {
	p := st.images[i]
	d := sm.ImageDetail{Key: p.img.Key, Kind: p.img.Kind, Label: p.img.Label, Score: p.score, MaxScore: p.maxScore,
		DefectPixels: p.defects, Regions: []sm.RegionDetail{}, PixelAP: st.ap[i]}
	own := &st.own[i]
	for j, k := range own.nk {
		if unkey64(k) >= thr {
			d.FalsePositives += int64(own.nc[j])
		}
	}
	for r, a := range p.areas {
		var c int64
		if covered != nil {
			c = covered[i][r]
		}
		d.Regions = append(d.Regions, sm.RegionDetail{Area: a, Covered: float64(c) / float64(a)})
	}
	return d
}

// sweepHist sweeps a histogram from the highest value down: each key is one group of tied scores.
func sweepHist(h *hist, tc trackCounts, cfg sweepConfig, curves bool) *sweep {
	P, N := h.counts()
	s := newSweep(P, N, tc, cfg, curves)
	i, j := len(h.nk)-1, len(h.dk)-1
	var cells []uint32
	var counts []uint64
	for i >= 0 || j >= 0 {
		var k uint64
		switch {
		case i < 0:
			k = h.dk[j]
		case j < 0:
			k = h.nk[i]
		default:
			k = max(h.nk[i], h.dk[j])
		}
		var dfp, dtp int64
		if i >= 0 && h.nk[i] == k {
			dfp = int64(h.nc[i])
			i--
		}
		cells, counts = cells[:0], counts[:0]
		for j >= 0 && h.dk[j] == k {
			cells, counts = append(cells, h.dc[j]), append(counts, h.dn[j])
			j--
		}
		// Entries of one key come in descending cell order here: enter them ascending.
		for x := len(cells) - 1; x >= 0; x-- {
			s.hit(cells[x], int64(counts[x]))
			dtp += int64(counts[x])
		}
		s.step(unkey64(k), dtp, dfp)
	}
	s.finish()
	return s
}
