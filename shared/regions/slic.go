package regions

import (
	"fmt"
	"math"
)

// Superpixels is a partition of an image into compact regions of similar colour: Label[y*W+x] is the
// superpixel of pixel (x, y), in 0..N-1, and every superpixel is 4-connected.
type Superpixels struct {
	W, H  int
	N     int
	Label []int32
	// Box[k] is the bounding box of superpixel k as {x0, y0, x1, y1}: painting a superpixel scans only it.
	Box [][4]int32
}

// SLICOptions tunes SLIC. The zero value picks the defaults.
type SLICOptions struct {
	// Step is the grid spacing of the initial centres in pixels, about the width of one superpixel.
	// 0: DefaultStep for the image size.
	Step int
	// Compactness weighs distance in the image against distance in colour (RGB, 0..255 per channel):
	// larger gives squarer superpixels, smaller follows colour edges more closely. 0: 20.
	Compactness float64
	// Iterations of assignment and centre update. 0: 5, where SLIC has essentially converged.
	Iterations int
	// Yield, when set, is called every few hundred thousand pixel visits. In the browser it lets the
	// page paint and handle input while a goroutine computes (wasm runs one thread).
	Yield func()
}

// DefaultStep gives about 4096 superpixels per image (16 px wide at 1024x1024), never narrower than 8 px:
// fine enough to follow a scratch, coarse enough that a brush dab paints a useful area.
func DefaultStep(w, h int) int {
	return max(8, int(math.Round(math.Sqrt(float64(w*h)/4096))))
}

type centre struct{ r, g, b, x, y float32 }

// SLIC computes superpixels by simple linear iterative clustering (Achanta et al., 2012) in RGB,
// followed by the usual connectivity step that merges fragments smaller than a quarter of a
// superpixel into a neighbour.
func SLIC(img *RGBA, o SLICOptions) (*Superpixels, error) {
	if img == nil || len(img.Pix) != img.W*img.H*4 || img.W <= 0 || img.H <= 0 {
		return nil, fmt.Errorf("slic: invalid image")
	}
	w, h := img.W, img.H
	step := o.Step
	if step <= 0 {
		step = DefaultStep(w, h)
	}
	m := o.Compactness
	if m <= 0 {
		m = 20
	}
	iters := o.Iterations
	if iters <= 0 {
		iters = 5
	}
	yield := o.Yield
	if yield == nil {
		yield = func() {}
	}
	pix := img.Pix

	// Centres on a regular grid, each moved to the lowest colour gradient of its 3x3 neighbourhood so
	// that none starts on an edge.
	var cs []centre
	for gy := step / 2; gy < h; gy += step {
		for gx := step / 2; gx < w; gx += step {
			bx, by := gx, gy
			best := math.MaxInt
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					x, y := gx+dx, gy+dy
					if x < 1 || y < 1 || x >= w-1 || y >= h-1 {
						continue
					}
					if g := gradient(pix, w, x, y); g < best {
						best, bx, by = g, x, y
					}
				}
			}
			o := (by*w + bx) * 4
			cs = append(cs, centre{float32(pix[o]), float32(pix[o+1]), float32(pix[o+2]), float32(bx), float32(by)})
		}
	}
	if len(cs) == 0 {
		cs = append(cs, centre{float32(pix[0]), float32(pix[1]), float32(pix[2]), 0, 0})
	}

	n := w * h
	// Colour planes as float32: the distance loop then reads three floats instead of converting bytes.
	pr, pg, pb := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range pr {
		pr[i], pg[i], pb[i] = float32(pix[i*4]), float32(pix[i*4+1]), float32(pix[i*4+2])
	}
	label := make([]int32, n)
	dist := make([]float32, n)
	sums := make([][6]float64, len(cs))
	// D = dc² + (m/S)² ds², the SLIC distance with colour and space on comparable scales.
	ws := float32(m * m / float64(step*step))
	work := 0
	for it := 0; it < iters; it++ {
		for i := range dist {
			dist[i] = math.MaxFloat32
		}
		for k, c := range cs {
			x0, x1 := max(0, int(c.x)-step), min(w, int(c.x)+step+1)
			y0, y1 := max(0, int(c.y)-step), min(h, int(c.y)+step+1)
			for y := y0; y < y1; y++ {
				dy := float32(y) - c.y
				dy2 := ws * dy * dy
				row := y * w
				// Row slices of equal length let the compiler drop the bounds checks of the hot loop.
				pr, pg, pb := pr[row+x0:row+x1], pg[row+x0:row+x1], pb[row+x0:row+x1]
				dr := dist[row+x0 : row+x1]
				lr := label[row+x0 : row+x1]
				pg, pb, dr, lr = pg[:len(pr)], pb[:len(pr)], dr[:len(pr)], lr[:len(pr)]
				dx := float32(x0) - c.x
				for j := range pr {
					a, b, g := pr[j]-c.r, pg[j]-c.g, pb[j]-c.b
					d := a*a + b*b + g*g + ws*dx*dx + dy2
					if d < dr[j] {
						dr[j] = d
						lr[j] = int32(k)
					}
					dx++
				}
			}
			work += (x1 - x0) * (y1 - y0)
			if work > 1<<18 {
				work = 0
				yield()
			}
		}
		clear(sums)
		for y := 0; y < h; y++ {
			row := y * w
			for x := 0; x < w; x++ {
				i := row + x
				s := &sums[label[i]]
				s[0] += float64(pix[i*4])
				s[1] += float64(pix[i*4+1])
				s[2] += float64(pix[i*4+2])
				s[3] += float64(x)
				s[4] += float64(y)
				s[5]++
			}
		}
		for k := range cs {
			if s := sums[k]; s[5] > 0 {
				cs[k] = centre{float32(s[0] / s[5]), float32(s[1] / s[5]), float32(s[2] / s[5]), float32(s[3] / s[5]), float32(s[4] / s[5])}
			}
		}
		yield()
	}
	sp := enforceConnectivity(pix, label, w, h, step*step/4)
	yield()
	return sp, nil
}

func gradient(pix []uint8, w, x, y int) int {
	d := func(a, b int) int {
		s := 0
		for c := 0; c < 3; c++ {
			v := int(pix[a*4+c]) - int(pix[b*4+c])
			s += v * v
		}
		return s
	}
	i := y*w + x
	return d(i+1, i-1) + d(i+w, i-w)
}

// enforceConnectivity relabels the 4-connected components of label and merges every component smaller
// than minSize into the neighbouring component of the closest mean colour, so each superpixel is one
// piece, none is a speck, and a speck on one side of a colour edge does not join the other side.
func enforceConnectivity(pix []uint8, label []int32, w, h, minSize int) *Superpixels {
	n := w * h
	comp := make([]int32, n)
	for i := range comp {
		comp[i] = -1
	}
	var stack []int32
	var size []int32
	var sum [][3]float64
	for start := 0; start < n; start++ {
		if comp[start] >= 0 {
			continue
		}
		id := int32(len(size))
		old := label[start]
		var cnt int32
		var cs [3]float64
		stack = append(stack[:0], int32(start))
		comp[start] = id
		for len(stack) > 0 {
			i := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			cnt++
			cs[0] += float64(pix[i*4])
			cs[1] += float64(pix[i*4+1])
			cs[2] += float64(pix[i*4+2])
			x, y := i%w, i/w
			if x > 0 && comp[i-1] < 0 && label[i-1] == old {
				comp[i-1] = id
				stack = append(stack, int32(i-1))
			}
			if x+1 < w && comp[i+1] < 0 && label[i+1] == old {
				comp[i+1] = id
				stack = append(stack, int32(i+1))
			}
			if y > 0 && comp[i-w] < 0 && label[i-w] == old {
				comp[i-w] = id
				stack = append(stack, int32(i-w))
			}
			if y+1 < h && comp[i+w] < 0 && label[i+w] == old {
				comp[i+w] = id
				stack = append(stack, int32(i+w))
			}
		}
		size = append(size, cnt)
		sum = append(sum, cs)
	}
	nc := len(size)
	parent := make([]int32, nc)
	for c := range parent {
		parent[c] = int32(c)
	}
	find := func(c int32) int32 {
		for parent[c] != c {
			parent[c] = parent[parent[c]]
			c = parent[c]
		}
		return c
	}
	best := make([]int32, nc)
	bestD := make([]float64, nc)
	// Rounds of merging: each small group joins the adjacent group of the closest mean colour. Two
	// specks may pick each other and stay small together, so repeat until no group is small (or
	// none can grow: an image smaller than one superpixel).
	for round := 0; round < 16; round++ {
		for c := range best {
			best[c], bestD[c] = -1, math.MaxFloat64
		}
		consider := func(c, d int32) {
			if int(size[c]) >= minSize {
				return
			}
			sc, sd := sum[c], sum[d]
			nc, nd := float64(size[c]), float64(size[d])
			d0, d1, d2 := sc[0]/nc-sd[0]/nd, sc[1]/nc-sd[1]/nd, sc[2]/nc-sd[2]/nd
			dist := d0*d0 + d1*d1 + d2*d2
			if dist < bestD[c] || (dist == bestD[c] && d < best[c]) {
				best[c], bestD[c] = d, dist
			}
		}
		small := false
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				i := y*w + x
				c := find(comp[i])
				if x+1 < w {
					if d := find(comp[i+1]); d != c {
						consider(c, d)
						consider(d, c)
					}
				}
				if y+1 < h {
					if d := find(comp[i+w]); d != c {
						consider(c, d)
						consider(d, c)
					}
				}
			}
		}
		for c := range best {
			if best[c] < 0 {
				continue
			}
			a, b := find(int32(c)), find(best[c])
			if a == b {
				continue
			}
			parent[a] = b
			size[b] += size[a]
			for j := range 3 {
				sum[b][j] += sum[a][j]
			}
			small = true
		}
		if !small {
			break
		}
	}
	final := make([]int32, nc)
	for c := range final {
		final[c] = -1
	}
	next := int32(0)
	out := label // reuse: label is not needed any more
	for i := range comp {
		r := find(comp[i])
		if final[r] < 0 {
			final[r] = next
			next++
		}
		out[i] = final[r]
	}
	sp := &Superpixels{W: w, H: h, N: int(next), Label: out, Box: make([][4]int32, next)}
	for k := range sp.Box {
		sp.Box[k] = [4]int32{int32(w), int32(h), 0, 0}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			b := &sp.Box[out[y*w+x]]
			b[0], b[1] = min(b[0], int32(x)), min(b[1], int32(y))
			b[2], b[3] = max(b[2], int32(x+1)), max(b[3], int32(y+1))
		}
	}
	return sp
}

// At returns the superpixel of pixel (x, y), or -1 outside the image.
func (sp *Superpixels) At(x, y int) int32 {
	if x < 0 || y < 0 || x >= sp.W || y >= sp.H {
		return -1
	}
	return sp.Label[y*sp.W+x]
}

// Spans appends the pixels of superpixel k to dst.
func (sp *Superpixels) Spans(k int32, dst []Span) []Span {
	if k < 0 || int(k) >= sp.N {
		return dst
	}
	b := sp.Box[k]
	for y := b[1]; y < b[3]; y++ {
		row := sp.Label[int(y)*sp.W : int(y+1)*sp.W]
		run := int32(-1)
		for x := b[0]; x < b[2]; x++ {
			if row[x] == k {
				if run < 0 {
					run = x
				}
			} else if run >= 0 {
				dst = append(dst, Span{y, run, x})
				run = -1
			}
		}
		if run >= 0 {
			dst = append(dst, Span{y, run, b[2]})
		}
	}
	return dst
}

// UnderDisc appends to dst the superpixels with at least one pixel centre inside the disc of diameter
// size centred on (cx, cy), each once, in the order met.
func (sp *Superpixels) UnderDisc(cx, cy float64, size int, dst []int32) []int32 {
	rad := math.Max(float64(size)/2, 0.5)
	x0, x1 := max(0, int(math.Floor(cx-rad))), min(sp.W, int(math.Ceil(cx+rad))+1)
	y0, y1 := max(0, int(math.Floor(cy-rad))), min(sp.H, int(math.Ceil(cy+rad))+1)
	r2 := rad * rad
	first := len(dst)
	last := int32(-1)
	for y := y0; y < y1; y++ {
		dy := float64(y) + 0.5 - cy
		for x := x0; x < x1; x++ {
			dx := float64(x) + 0.5 - cx
			if dx*dx+dy*dy > r2 && size > 1 {
				continue
			}
			if size <= 1 && (x != int(math.Floor(cx)) || y != int(math.Floor(cy))) {
				continue
			}
			k := sp.Label[y*sp.W+x]
			if k == last {
				continue
			}
			last = k
			dup := false
			for _, q := range dst[first:] {
				if q == k {
					dup = true
					break
				}
			}
			if !dup {
				dst = append(dst, k)
			}
		}
	}
	return dst
}
