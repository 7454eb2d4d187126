//go:build !js

package demodata

import "image"

// rng is splitmix64: tiny, fully specified, and the same on every platform (math/rand's sources are
// allowed to change between Go releases for the global functions; this one cannot).
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed} }

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

// intn returns a value in [0, n); n is small, so the modulo bias is negligible and, above all, fixed.
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// between returns a value in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// hash2 is a stateless lattice hash for noise.
func hash2(x, y int, salt uint64) uint64 {
	return mix(uint64(uint32(x)) | uint64(uint32(y))<<32 ^ salt)
}

// smooth is the smoothstep 3f^2 - 2f^3 in 8-bit fixed point: f and the result are in [0, 256).
func smooth(f int) int { return f * f * (768 - 2*f) >> 16 }

// valueNoise is bilinear value noise on a cx-by-cy lattice, in [0, 255]: the plain definition that
// noiseLayer computes faster (the tests hold them equal).
func valueNoise(x, y, cx, cy int, salt uint64) int {
	ix, iy := x/cx, y/cy
	fx := smooth((x % cx) * 256 / cx)
	fy := smooth((y % cy) * 256 / cy)
	v00 := int(hash2(ix, iy, salt) & 255)
	v10 := int(hash2(ix+1, iy, salt) & 255)
	v01 := int(hash2(ix, iy+1, salt) & 255)
	v11 := int(hash2(ix+1, iy+1, salt) & 255)
	top := v00*256 + (v10-v00)*fx
	bot := v01*256 + (v11-v01)*fx
	return (top*256 + (bot-top)*fy) >> 16
}

// noiseLayer is valueNoise over the image at a fixed offset with its lattice hashed once: the same values
// as calling valueNoise per pixel, a dozen times cheaper.
type noiseLayer struct {
	ox, oy, cx, cy, amp int
	ix0, iy0, stride    int
	lat                 []int
}

func newNoiseLayer(ox, oy, cx, cy, amp int, salt uint64) *noiseLayer {
	l := &noiseLayer{ox: ox, oy: oy, cx: cx, cy: cy, amp: amp, ix0: ox / cx, iy0: oy / cy}
	nx := (ox+Size-1)/cx - l.ix0 + 2
	ny := (oy+Size-1)/cy - l.iy0 + 2
	l.stride = nx
	l.lat = make([]int, nx*ny)
	for j := 0; j < ny; j++ {
		for i := 0; i < nx; i++ {
			l.lat[j*nx+i] = int(hash2(l.ix0+i, l.iy0+j, salt) & 255)
		}
	}
	return l
}

// at returns the noise at image pixel (x, y), mapped to [-amp, amp].
func (l *noiseLayer) at(x, y int) int {
	x, y = x+l.ox, y+l.oy
	ix, iy := x/l.cx-l.ix0, y/l.cy-l.iy0
	fx := smooth((x % l.cx) * 256 / l.cx)
	fy := smooth((y % l.cy) * 256 / l.cy)
	i := iy*l.stride + ix
	v00, v10, v01, v11 := l.lat[i], l.lat[i+1], l.lat[i+l.stride], l.lat[i+l.stride+1]
	top := v00*256 + (v10-v00)*fx
	bot := v01*256 + (v11-v01)*fx
	return (((top*256 + (bot-top)*fy) >> 16) - 128) * l.amp / 128
}

// canvas holds the RGB channels as ints so that defects can push values past 0..255 before the final clamp.
type canvas struct {
	r, g, b []int
	salt    uint64
}

// surface renders a brushed-metal texture: long horizontal streaks (a lattice stretched along x), a finer
// streak octave, slow shading across the plate and per-pixel grain. Brightness, tint, streak length, phase
// and grain strength vary per image so that "good" is a distribution, not one picture.
func surface(seed uint64) *canvas {
	r := newRNG(seed)
	base := r.between(105, 150)
	tr, tg, tb := r.between(-6, 6), r.between(-4, 4), r.between(-2, 10)
	streakLen := r.between(40, 80)
	streakAmp := r.between(16, 26)
	fineAmp := r.between(6, 10)
	shadeAmp := r.between(10, 22)
	grain := r.between(3, 7)
	ox, oy := r.intn(1<<16), r.intn(1<<16)
	salt := r.next()
	c := &canvas{r: make([]int, Size*Size), g: make([]int, Size*Size), b: make([]int, Size*Size), salt: salt}
	streaks := newNoiseLayer(ox, oy, streakLen, 2, streakAmp, salt)
	fine := newNoiseLayer(ox, oy, 11, 1, fineAmp, salt^1)
	shade := newNoiseLayer(ox, oy, 128, 128, shadeAmp, salt^2)
	for y := 0; y < Size; y++ {
		for x := 0; x < Size; x++ {
			v := base + streaks.at(x, y) + fine.at(x, y) + shade.at(x, y) +
				int(hash2(x, y, salt^3)%uint64(2*grain+1)) - grain
			i := y*Size + x
			c.r[i], c.g[i], c.b[i] = v+tr, v+tg, v+tb
		}
	}
	return c
}

func clamp8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

func (c *canvas) rgb() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, Size, Size))
	for i := range c.r {
		p := img.Pix[4*i:]
		p[0], p[1], p[2], p[3] = clamp8(c.r[i]), clamp8(c.g[i]), clamp8(c.b[i]), 255
	}
	return img
}

// dirs are 16 unit directions (22.5 degree steps) scaled by 1024, rounded once and written down so that no
// trigonometry runs at generation time.
var dirs = [16][2]int{
	{1024, 0}, {946, 392}, {724, 724}, {392, 946}, {0, 1024}, {-392, 946}, {-724, 724}, {-946, 392},
	{-1024, 0}, {-946, -392}, {-724, -724}, {-392, -946}, {0, -1024}, {392, -946}, {724, -724}, {946, -392},
}

type point struct{ x, y int }

func clampPt(p point) point {
	const lo, hi = 10, Size - 11
	p.x = max(lo, min(hi, p.x))
	p.y = max(lo, min(hi, p.y))
	return p
}

func step(p point, dir, length int) point {
	d := dirs[((dir%16)+16)%16]
	return clampPt(point{p.x + d[0]*length/1024, p.y + d[1]*length/1024})
}

// stroke marks every pixel whose centre lies within r4/4 pixels of segment a-b. Exact integer geometry:
// compare squared distances scaled by 16 so that quarter-pixel radii need no division.
func stroke(m []bool, a, b point, r4 int) {
	pad := r4/4 + 1
	x0, x1 := min(a.x, b.x)-pad, max(a.x, b.x)+pad
	y0, y1 := min(a.y, b.y)-pad, max(a.y, b.y)+pad
	dx, dy := b.x-a.x, b.y-a.y
	len2 := dx*dx + dy*dy
	r2 := r4 * r4 // (radius*4)^2
	for y := max(0, y0); y <= min(Size-1, y1); y++ {
		for x := max(0, x0); x <= min(Size-1, x1); x++ {
			px, py := x-a.x, y-a.y
			t := px*dx + py*dy
			var d16 int // 16 * squared distance
			switch {
			case len2 == 0 || t <= 0:
				d16 = 16 * (px*px + py*py)
			case t >= len2:
				qx, qy := x-b.x, y-b.y
				d16 = 16 * (qx*qx + qy*qy)
			default:
				cross := px*dy - py*dx
				// dist^2 = cross^2/len2; compare 16*cross^2 <= r2*len2 without dividing.
				if 16*cross*cross <= r2*len2 {
					m[y*Size+x] = true
				}
				continue
			}
			if d16 <= r2 {
				m[y*Size+x] = true
			}
		}
	}
}

// disc marks the pixels within radius rad of c.
func disc(m []bool, c point, rad int) {
	for y := max(0, c.y-rad); y <= min(Size-1, c.y+rad); y++ {
		for x := max(0, c.x-rad); x <= min(Size-1, c.x+rad); x++ {
			dx, dy := x-c.x, y-c.y
			if dx*dx+dy*dy <= rad*rad {
				m[y*Size+x] = true
			}
		}
	}
}

// defect paints one defect of kind into c and returns its mask (0/255 grey). The changes are moderate on
// purpose: a scratch is 30-50 grey levels off a texture whose streaks swing by about as much, so a detector
// has to use shape and context, not a global threshold.
func defect(c *canvas, kind string, r *rng) *image.Gray {
	m := make([]bool, Size*Size)
	start := clampPt(point{r.between(48, Size-48), r.between(48, Size-48)})
	switch kind {
	case "scratch":
		// A slightly bent line of three segments, 1-1.5 px radius, across the streaks.
		dir := r.between(2, 6) + 8*r.intn(2)
		r4 := r.between(4, 6)
		p := start
		for s := 0; s < 3; s++ {
			q := step(p, dir, r.between(22, 40))
			stroke(m, p, q, r4)
			p = q
			dir += r.between(-1, 1)
		}
		delta := r.between(30, 50)
		if r.intn(2) == 0 {
			delta = -delta
		}
		c.paint(m, func(i, n int) (int, int, int) { d := delta + n; return d, d, d })
	case "spot":
		// A stain: a few overlapping discs, darker and shifted towards rust.
		for k, n := 0, r.between(3, 5); k < n; k++ {
			disc(m, clampPt(point{start.x + r.between(-9, 9), start.y + r.between(-9, 9)}), r.between(4, 10))
		}
		dark := r.between(18, 32)
		c.paint(m, func(i, n int) (int, int, int) { return 8 - dark + n, -dark - 10 + n, -dark - 24 + n })
	case "crack":
		// A jagged random walk with one branch, thin and dark.
		dir := r.intn(16)
		r4 := r.between(3, 5)
		p := start
		var mid point
		steps := r.between(10, 16)
		for s := 0; s < steps; s++ {
			q := step(p, dir+r.between(-2, 2), r.between(5, 8))
			stroke(m, p, q, r4)
			if s == steps/2 {
				mid = q
			}
			p = q
		}
		bdir := dir + 4 - 8*r.intn(2)
		p = mid
		for s, n := 0, r.between(3, 6); s < n; s++ {
			q := step(p, bdir+r.between(-2, 2), r.between(4, 7))
			stroke(m, p, q, 3)
			p = q
		}
		delta := -r.between(50, 75)
		c.paint(m, func(i, n int) (int, int, int) { d := delta + n; return d, d, d })
	default:
		panic("demodata: unknown defect kind " + kind) // Kinds is a package constant: a bug, not input
	}
	out := image.NewGray(image.Rect(0, 0, Size, Size))
	for i, v := range m {
		if v {
			out.Pix[i] = 255
		}
	}
	return out
}

// paint adds f's offsets to every masked pixel; n is a little per-pixel noise so a defect is not flat.
func (c *canvas) paint(m []bool, f func(i, n int) (int, int, int)) {
	for i, v := range m {
		if !v {
			continue
		}
		n := int(hash2(i, 7, c.salt^4)%13) - 6
		dr, dg, db := f(i, n)
		c.r[i] += dr
		c.g[i] += dg
		c.b[i] += db
	}
}
