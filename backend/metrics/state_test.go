package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// randomOptions draws the options a state carries: limits, thresholds, detail, per kind.
func randomOptions(r *rand.Rand) Options {
	opt := Options{FPRLimit: []float64{0, 0.3, 0.05, 1, 0.2}[r.IntN(5)], Detail: r.IntN(2) == 0, NoPerKind: r.IntN(2) == 0}
	if r.IntN(2) == 0 {
		opt.FPRLimits = []float64{0.01, 1}[:1+r.IntN(2)]
	}
	if r.IntN(2) == 0 {
		t := float64(r.IntN(8)) / 8
		opt.Threshold, opt.ThresholdSource = &t, "test"
		if r.IntN(2) == 0 {
			it := float64(r.IntN(4)) / 4
			opt.ImageThreshold = &it
		}
	}
	return opt
}

// resultJSON returns a function that marshals a result, failing the test on an error.
func resultJSON(t *testing.T, ctx string) func(*sm.Result, error) []byte {
	return func(res *sm.Result, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", ctx, err)
		}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// TestState_MergeParts_BitIdenticalToCompute: random sets (ties, constant maps, negative scores, both
// zeros, float64 maps beside float32 ones, LOCO saturation regions) under random options are split into
// one to four random parts; the merged states of the parts, merged in any order and grouping, give the
// JSON of Compute on the whole set byte for byte, and so does the state of the whole.
func TestState_MergeParts_BitIdenticalToCompute(t *testing.T) {
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(31, 32))
	cases := 300
	if raceEnabled {
		cases = 60
	}
	for c := 0; c < cases; c++ {
		images := randomCase(r)
		if r.IntN(2) == 0 {
			images = withParts(r, images)
		}
		switch r.IntN(4) {
		case 0: // all float64, apart in float64 only
			for i := range images {
				images[i].Map64, images[i].Map = pixelValues(images[i]), nil
				for j := range images[i].Map64 {
					images[i].Map64[j] += 1e-13 * float64(r.IntN(3))
				}
			}
		case 1: // one float64 map among float32 ones
			i := r.IntN(len(images))
			images[i].Map64, images[i].Map = pixelValues(images[i]), nil
		}
		smallSet = []int{0, defaultSmallSet}[r.IntN(2)]
		opt := randomOptions(r)
		ctx := fmt.Sprintf("case %d", c)
		want := resultJSON(t, ctx+" compute")(Compute(images, opt))
		st, err := StateOf(images, opt)
		if err != nil {
			t.Fatal(err)
		}
		whole := resultJSON(t, ctx+" state")(st.Result())
		if !bytes.Equal(whole, want) {
			t.Fatalf("%s: state of the whole differs from Compute:\n%s\n%s", ctx, whole, want)
		}
		// Random parts, each non-empty.
		k := 1 + r.IntN(min(4, len(images)))
		perm := r.Perm(len(images))
		parts := make([][]Image, k)
		for i, p := range perm {
			g := i
			if i >= k {
				g = r.IntN(k)
			}
			parts[g] = append(parts[g], images[p])
		}
		states := make([]*State, k)
		for i, p := range parts {
			if states[i], err = StateOf(p, opt); err != nil {
				t.Fatalf("%s part %d: %v", ctx, i, err)
			}
		}
		var merged *State
		if k > 2 && r.IntN(2) == 0 {
			left, err := Merge(states[:2]...)
			if err != nil {
				t.Fatal(err)
			}
			merged, err = Merge(append([]*State{left}, states[2:]...)...)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			r.Shuffle(k, func(i, j int) { states[i], states[j] = states[j], states[i] })
			if merged, err = Merge(states...); err != nil {
				t.Fatal(err)
			}
		}
		got := resultJSON(t, ctx+" merged")(merged.Result())
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: merge of %d parts differs from Compute:\n%s\n%s", ctx, k, got, want)
		}
	}
}

// TestMerge_Refuses: states of other options, and an image in two states.
func TestMerge_Refuses(t *testing.T) {
	im := Image{Key: "good/000", Kind: "good", W: 2, H: 1, Map: []float32{1, 2}}
	a, _ := StateOf([]Image{im}, Options{})
	b, _ := StateOf([]Image{im}, Options{})
	if _, err := Merge(a, b); err == nil {
		t.Error("an image in two states: merged")
	}
	im.Key = "good/001"
	c, _ := StateOf([]Image{im}, Options{FPRLimits: []float64{1}})
	if _, err := Merge(a, c); err == nil {
		t.Error("other limits: merged")
	}
	thr := 0.5
	d, _ := StateOf([]Image{im}, Options{Threshold: &thr})
	if _, err := Merge(a, d); err == nil {
		t.Error("other threshold: merged")
	}
}

// quantizedSet is a set of 8-bit-like maps (256 levels, so every group of tied scores holds pixels of
// many images and regions) with random rectangular defects, some in two LOCO-style saturation regions.
func quantizedSet(r *rand.Rand, n, w, h int) []Image {
	var out []Image
	for i := range n {
		im := Image{Key: fmt.Sprintf("good/%03d", i), Kind: "good", W: w, H: h, Map: make([]float32, w*h)}
		for j := range im.Map {
			im.Map[j] = float32(r.IntN(200)) / 255
		}
		if i%3 != 0 {
			im.Kind, im.Label = []string{"crack", "hole"}[i%2], 1
			im.Key = fmt.Sprintf("%s/%03d", im.Kind, i)
			im.Mask = make([]bool, w*h)
			var a, b []bool
			if r.IntN(2) == 0 {
				a, b = make([]bool, w*h), make([]bool, w*h)
			}
			for range 1 + r.IntN(4) {
				x0, y0, s := r.IntN(w-8), r.IntN(h-8), 1+r.IntN(8)
				for y := y0; y < y0+s; y++ {
					for x := x0; x < x0+s; x++ {
						im.Mask[y*w+x] = true
						im.Map[y*w+x] = float32(60+r.IntN(196)) / 255
						if a != nil {
							if x < x0+s/2 {
								a[y*w+x] = true
							} else {
								b[y*w+x] = true
							}
						}
					}
				}
			}
			if a != nil {
				for _, m := range [][]bool{a, b} {
					for _, v := range m {
						if v {
							im.SatRegions = append(im.SatRegions, SatRegion{Mask: m, Saturation: int64(1 + r.IntN(20))})
							break
						}
					}
				}
			}
		}
		out = append(out, im)
	}
	return out
}

// TestState_QuantizedMaps_MergeBitIdentical: 8-bit-like maps, where every tie group mixes many images and
// regions, split into 2 to 8 parts: the merged state gives Compute's JSON byte for byte, and the state
// has one entry per distinct value and source, however many pixels.
func TestState_QuantizedMaps_MergeBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for c := range 6 {
		images := quantizedSet(r, 12+r.IntN(12), 48, 40)
		thr := 0.5
		opt := Options{Detail: c%2 == 0, Threshold: &thr, FPRLimits: []float64{1}}
		want := resultJSON(t, "compute")(Compute(images, opt))
		k := 2 + r.IntN(7)
		parts := make([][]Image, k)
		for i, im := range images {
			parts[i%k] = append(parts[i%k], im)
		}
		var states []*State
		for _, p := range parts {
			st, err := StateOf(p, opt)
			if err != nil {
				t.Fatal(err)
			}
			states = append(states, st)
		}
		m, err := Merge(states...)
		if err != nil {
			t.Fatal(err)
		}
		if got := resultJSON(t, "merged")(m.Result()); !bytes.Equal(got, want) {
			t.Fatalf("case %d: merged result differs:\n%s\n%s", c, got, want)
		}
		for n, h := range m.src {
			if len(h.nk) > 256 {
				t.Errorf("source %q has %d normal entries, want at most one per level", n, len(h.nk))
			}
		}
	}
}

// TestState_File_RoundTrip: a state written and read back gives the same result, byte for byte, for
// float32 maps (stored as float32 keys) and float64 ones; merging read-back states still equals Compute.
func TestState_File_RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	for c := range 80 {
		images := withParts(r, randomCase(r))
		if c%3 == 0 {
			for i := range images {
				images[i].Map64, images[i].Map = pixelValues(images[i]), nil
				images[i].Map64[0] += 1e-12
			}
		}
		opt := randomOptions(r)
		want := resultJSON(t, "compute")(Compute(images, opt))
		var parts []*State
		for h := range 2 {
			var sub []Image
			for i, im := range images {
				if i%2 == h {
					sub = append(sub, im)
				}
			}
			if len(sub) == 0 {
				continue
			}
			st, err := StateOf(sub, opt)
			if err != nil {
				t.Fatal(err)
			}
			st.Notes = []Note{{Order: "1", Text: fmt.Sprint("part ", h)}, {Order: "0", Text: "dataset"}}
			var buf bytes.Buffer
			if err := WriteState(&buf, st); err != nil {
				t.Fatal(err)
			}
			back, err := ReadState(&buf)
			if err != nil {
				t.Fatalf("case %d: read back: %v", c, err)
			}
			parts = append(parts, back)
		}
		m, err := Merge(parts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := resultJSON(t, "merged")(m.Result()); !bytes.Equal(got, want) {
			t.Fatalf("case %d: read-back merge differs:\n%s\n%s", c, got, want)
		}
		if notes := ComposeNotes(m.Notes); notes[0] != "dataset" || (len(parts) == 2 && (len(notes) != 3 || notes[1] != "part 0")) {
			t.Errorf("case %d: notes %q", c, notes)
		}
	}
}

// TestReadState_Damaged: truncation, a flipped byte, another file, a histogram that does not add up.
func TestReadState_Damaged(t *testing.T) {
	images := quantizedSet(rand.New(rand.NewPCG(1, 1)), 4, 16, 16)
	st, err := StateOf(images, Options{Detail: true})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteState(&buf, st); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	if _, err := ReadState(bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated": good[:len(good)/2],
		"not gzip":  []byte("hello"),
		"empty":     {},
	} {
		if _, err := ReadState(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A count changed inside a valid gzip stream: the checks catch it.
	st.src["k:crack"].nc[0]++
	buf.Reset()
	WriteState(&buf, st)
	if _, err := ReadState(&buf); err == nil || !strings.Contains(err.Error(), "metric state") {
		t.Errorf("count changed: %v", err)
	}
}

// TestBuilder_EqualsStateOf: images added one by one, concurrently and in any order, give the state of
// StateOf (the same result JSON, byte for byte); quantized maps hold one entry per level and source.
func TestBuilder_EqualsStateOf(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	for c := range 120 {
		var images []Image
		if c%4 == 0 {
			images = quantizedSet(r, 6+r.IntN(6), 24, 20)
		} else {
			images = withParts(r, randomCase(r))
		}
		if c%5 == 1 {
			for i := range images {
				images[i].Map64, images[i].Map = pixelValues(images[i]), nil
			}
		}
		opt := randomOptions(r)
		want := resultJSON(t, "compute")(Compute(images, opt))
		b := NewBuilder(opt)
		var wg sync.WaitGroup
		errs := make([]error, len(images))
		for _, i := range r.Perm(len(images)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = b.Add(images[i])
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		st, err := b.State()
		if err != nil {
			t.Fatal(err)
		}
		if got := resultJSON(t, "builder")(st.Result()); !bytes.Equal(got, want) {
			t.Fatalf("case %d: builder differs:\n%s\n%s", c, got, want)
		}
	}
	// Constant memory for 8-bit maps: 60 images of 256 levels hold at most 256 normal entries per source
	// (plus their defect entries), not one per pixel.
	b := NewBuilder(Options{})
	for _, im := range quantizedSet(r, 60, 64, 64) {
		if err := b.Add(im); err != nil {
			t.Fatal(err)
		}
	}
	if e := b.Entries(); e > 3*256+3*2000 {
		t.Errorf("%d entries held for 60 images of 256 levels", e)
	}
	// Budget.
	b = NewBuilder(Options{})
	b.Budget = 10
	im := randomCase(r)[0]
	im.W, im.H, im.Map, im.Mask = 8, 8, make([]float32, 64), nil
	for i := range im.Map {
		im.Map[i] = float32(i)
	}
	if err := b.Add(im); err != ErrOverBudget {
		t.Errorf("over budget: %v", err)
	}
	if _, err := b.State(); err == nil {
		t.Error("state of a builder over budget")
	}
}

// TestComputeStream_EqualsCompute: the streamed evaluation and state, reading each image through a
// loader, give Compute's and StateOf's JSON byte for byte; a map that changes between reads is an error,
// a float64 map is refused.
func TestComputeStream_EqualsCompute(t *testing.T) {
	defer func() { smallSet = defaultSmallSet }()
	r := rand.New(rand.NewPCG(71, 72))
	for c := range 150 {
		images := randomCase(r)
		if c%3 == 0 {
			images = withParts(r, images)
		}
		if c%4 == 0 {
			images = quantizedSet(r, 5, 20, 16)
		}
		smallSet = []int{0, defaultSmallSet}[r.IntN(2)]
		opt := randomOptions(r)
		loads := 0
		var mu sync.Mutex
		load := func(i int, mask bool) (Image, error) {
			mu.Lock()
			loads++
			mu.Unlock()
			im := images[i]
			if !mask {
				im.Mask, im.SatRegions = nil, nil
			}
			return im, nil
		}
		want := resultJSON(t, "compute")(Compute(images, opt))
		if got := resultJSON(t, "stream")(ComputeStream(len(images), load, opt)); !bytes.Equal(got, want) {
			t.Fatalf("case %d: stream differs:\n%s\n%s", c, got, want)
		}
		st, err := StateOfStream(len(images), load, opt)
		if err != nil {
			t.Fatal(err)
		}
		if got := resultJSON(t, "stream state")(st.Result()); !bytes.Equal(got, want) {
			t.Fatalf("case %d: stream state differs:\n%s\n%s", c, got, want)
		}
	}
	images := randomCase(r)
	images[0].Map = append([]float32(nil), images[0].Map...)
	first := true
	_, err := ComputeStream(len(images), func(i int, mask bool) (Image, error) {
		im := images[i]
		if i == 0 && !mask && first {
			first = false
			im.Map = append([]float32(nil), im.Map...)
			im.Map[0] += 1
		}
		return im, nil
	}, Options{Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("changed map: %v", err)
	}
	images[0].Map64, images[0].Map = pixelValues(images[0]), nil
	if _, err := ComputeStream(len(images), func(i int, _ bool) (Image, error) { return images[i], nil }, Options{}); err != ErrStreamFloat64 {
		t.Errorf("float64 map: %v", err)
	}
}

// TestComputeStream_SortBudget_BitIdentical: random sets (float64 maps among them, LOCO parts) sorted one
// score range at a time under budgets from a few bytes (a range per bucket) to ample give Compute's JSON
// byte for byte, in memory and streamed; a tight budget reads the maps once more per range.
func TestComputeStream_SortBudget_BitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(91, 92))
	cases := 120
	if raceEnabled {
		cases = 30
	}
	ranged := 0
	for c := range cases {
		images := randomCase(r)
		if c%3 == 0 {
			images = withParts(r, images)
		}
		if c%5 == 0 {
			i := r.IntN(len(images))
			images[i].Map64, images[i].Map = pixelValues(images[i]), nil
		}
		opt := randomOptions(r)
		ctx := fmt.Sprintf("case %d", c)
		want := resultJSON(t, ctx+" compute")(Compute(images, opt))
		for _, budget := range []int64{1, 64, 1 << 10, 1 << 30} {
			o := opt
			o.SortBudget = budget
			if got := resultJSON(t, ctx+" budget")(Compute(images, o)); !bytes.Equal(got, want) {
				t.Fatalf("%s budget %d: differs from the one-pass sort:\n%s\n%s", ctx, budget, got, want)
			}
			if slices.ContainsFunc(images, func(im Image) bool { return im.Map64 != nil }) {
				continue
			}
			var mu sync.Mutex
			reads := 0
			load := func(i int, mask bool) (Image, error) {
				mu.Lock()
				reads++
				mu.Unlock()
				im := images[i]
				if !mask {
					im.Mask, im.SatRegions = nil, nil
				}
				return im, nil
			}
			if got := resultJSON(t, ctx+" stream budget")(ComputeStream(len(images), load, o)); !bytes.Equal(got, want) {
				t.Fatalf("%s budget %d: streamed differs from the one-pass sort:\n%s\n%s", ctx, budget, got, want)
			}
			// A budget of one byte sorts one bucket per pass: many more reads than images.
			if budget == 1 && reads > 4*len(images) {
				ranged++
			}
		}
	}
	if ranged == 0 {
		t.Error("no streamed case read its maps more than 4 times under a 1-byte budget: the sort never went by ranges")
	}
	t.Logf("%d of %d cases sorted by ranges", ranged, cases)
}
