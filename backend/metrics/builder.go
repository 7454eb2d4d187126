package metrics

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Builder makes the State of images that arrive one at a time, so that a map need not stay in memory
// after Add returns: each image's pixels are counted into a histogram of its own, and the histograms of a
// source are merged as they come (a merge whenever the newest is at least half the size of the one before,
// so a source holds a few histograms, and each pixel value is merged a logarithmic number of times). For
// maps with few distinct values (8-bit, float16) the held histograms stay at one entry per distinct value
// and source however many images arrive: constant memory. With Detail each image also keeps the histogram
// of its own normal pixels (up to one entry per distinct value per image).
//
// Budget bounds the entries held (normal and defect histogram entries together); Add returns ErrOverBudget
// once it is passed, and the caller evaluates another way (Compute's sort holds 4 bytes per normal pixel,
// where a histogram entry takes 16). The result does not depend on the order of the images or on
// concurrent Adds: State renumbers the cells in key order, as Merge does.
type Builder struct {
	opt    Options
	oerr   error
	Budget int64

	mu      sync.Mutex
	recs    []*prepared
	ap      []*float64
	own     []hist
	runs    map[string][]*hist
	cells   int64 // provisional cell ids handed out (in arrival order)
	cellOf  []int64
	entries int64
	keys    map[string]bool
	pixels  int64
	over    bool
}

// ErrOverBudget is returned by Add when the histograms pass the Builder's budget.
var ErrOverBudget = errors.New("metric state: more histogram entries than the budget")

// DefaultBudget is the Builder's default budget: 8 Mi entries, 128 MiB of histograms.
const DefaultBudget = 8 << 20

// NewBuilder starts a state; invalid options are reported by Add and State.
func NewBuilder(opt Options) *Builder {
	o, err := opt.normalized()
	return &Builder{opt: o, oerr: err, Budget: DefaultBudget, runs: map[string][]*hist{}, keys: map[string]bool{}}
}

// Entries is the number of histogram entries held now.
func (b *Builder) Entries() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entries
}

// Add counts one image. It is safe for concurrent use; the image's maps and masks are not kept.
func (b *Builder) Add(img Image) error {
	if b.oerr != nil {
		return b.oerr
	}
	im := img
	p, err := prepare(&im, &scratch{})
	if err != nil {
		return err
	}
	if b.opt.Threshold != nil {
		p.countAt(*b.opt.Threshold)
	}
	vals := func(yield func(i int, k uint64) bool) {
		if m := im.Map64; m != nil {
			for i, v := range m {
				if !yield(i, key64(v)) {
					return
				}
			}
			return
		}
		for i, v := range im.Map {
			if !yield(i, key64(float64(v))) {
				return
			}
		}
	}
	// The image's own histogram, with cells numbered locally for now.
	normals := make([]uint64, 0, int64(im.W*im.H)-p.defects)
	defects := make([]uint64, 0, p.defects) // packed later
	dkeys := make([]uint64, 0, p.defects)
	d := 0
	for i, k := range vals {
		if im.Mask != nil && im.Mask[i] {
			dkeys = append(dkeys, k)
			defects = append(defects, uint64(p.defLabels[d]))
			d++
		} else {
			normals = append(normals, k)
		}
	}
	sortKeys(normals, make([]uint64, len(normals)))
	h := &hist{}
	for a := 0; a < len(normals); {
		c := a + 1
		for c < len(normals) && normals[c] == normals[a] {
			c++
		}
		h.nk, h.nc = append(h.nk, normals[a]), append(h.nc, uint64(c-a))
		a = c
	}
	var own *hist
	if b.opt.Detail {
		own = &hist{nk: h.nk, nc: h.nc}
	}
	type dk struct {
		k    uint64
		cell uint64
	}
	ds := make([]dk, len(dkeys))
	for i := range dkeys {
		ds[i] = dk{dkeys[i], defects[i]}
	}
	slices.SortFunc(ds, func(x, y dk) int {
		switch {
		case x.k != y.k:
			if x.k < y.k {
				return -1
			}
			return 1
		case x.cell != y.cell:
			if x.cell < y.cell {
				return -1
			}
			return 1
		}
		return 0
	})
	for a := 0; a < len(ds); {
		c := a + 1
		for c < len(ds) && ds[c] == ds[a] {
			c++
		}
		h.dk, h.dc, h.dn = append(h.dk, ds[a].k), append(h.dc, uint32(ds[a].cell)), append(h.dn, uint64(c-a))
		a = c
	}
	var ap *float64
	if b.opt.Detail && p.defects > 0 {
		q := p
		if im.Map64 != nil {
			enc, _, err := encode([]*prepared{p}, 1)
			if err != nil {
				return err
			}
			q = enc[0]
		}
		if ap, err = ownAP(q); err != nil {
			return err
		}
	}
	rec := record(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keys[im.Key] {
		return fmt.Errorf("image %q: added twice", im.Key)
	}
	if b.pixels+int64(im.W*im.H) > MaxPixels {
		return fmt.Errorf("image %q: the evaluation would exceed %d pixels", im.Key, int64(MaxPixels))
	}
	b.keys[im.Key] = true
	b.pixels += int64(im.W * im.H)
	base := b.cells
	for i := range h.dc {
		h.dc[i] += uint32(base)
	}
	b.cells += int64(p.cells())
	b.cellOf = append(b.cellOf, base)
	b.recs = append(b.recs, rec)
	if b.opt.Detail {
		b.ap = append(b.ap, ap)
		b.own = append(b.own, *own)
		b.entries += int64(len(own.nk))
	}
	src := sourceName(p)
	stack := append(b.runs[src], h)
	b.entries += int64(len(h.nk) + len(h.dk))
	for len(stack) >= 2 {
		top, below := stack[len(stack)-1], stack[len(stack)-2]
		if 2*(len(top.nk)+len(top.dk)) < len(below.nk)+len(below.dk) {
			break
		}
		m := merge2(below, top)
		b.entries += int64(len(m.nk)+len(m.dk)) - int64(len(top.nk)+len(top.dk)+len(below.nk)+len(below.dk))
		stack = append(stack[:len(stack)-2], m)
	}
	b.runs[src] = stack
	if b.entries > b.Budget {
		b.over = true
		return ErrOverBudget
	}
	return nil
}

// State returns the state of the images added (all Adds must have returned).
func (b *Builder) State() (*State, error) {
	if b.oerr != nil {
		return nil, b.oerr
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over {
		return nil, ErrOverBudget
	}
	if len(b.recs) == 0 {
		return nil, errors.New("evaluate: no images")
	}
	// Key order, and the provisional cell ids mapped to the final ones.
	idx := make([]int, len(b.recs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int {
		if b.recs[x].img.Key < b.recs[y].img.Key {
			return -1
		}
		return 1
	})
	st := &State{opt: b.opt, src: map[string]*hist{}}
	for _, i := range idx {
		st.images = append(st.images, b.recs[i])
		if b.opt.Detail {
			st.ap, st.own = append(st.ap, b.ap[i]), append(st.own, b.own[i])
		}
	}
	_, off := buildGeometry(st.images)
	remap := make([]uint32, b.cells)
	for n, i := range idx {
		for c := range b.recs[i].cells() {
			remap[b.cellOf[i]+int64(c)] = uint32(off[n] + int64(c))
		}
	}
	for src, stack := range b.runs {
		parts := make([]*hist, len(stack))
		for i, h := range stack {
			parts[i] = remapHist(h, remap)
		}
		st.src[src] = mergeHists(parts)
	}
	return st, nil
}
