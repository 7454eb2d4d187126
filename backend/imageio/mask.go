//go:build !js

package imageio

import (
	"fmt"
	"image"
	"image/color"
	"io"
	"strconv"
)

// Mask is a ground-truth mask read with the package's mask rule.
type Mask struct {
	// Pix is row-major, W*H entries, true = defect.
	Pix  []bool
	W, H int
	// Encoding names how the file stores its defects: "grey 0/255", "grey 0/1", "grey 0/V",
	// "grey 0/255 anti-aliased", "class ids", "grey" (no known encoding), "grey empty", the same with a
	// "16-bit " prefix, "palette", "rgb", "rgba" or "jpeg". It is for messages; Pix is the answer.
	Encoding string
	// Warnings say why the values fit no known encoding. The mask is read with the rule all the same:
	// refusing it would lose a real mask with an unusual encoding, reading it silently would hide a
	// photo saved where a mask belongs.
	Warnings []string
	// Defects is the number of true entries in Pix.
	Defects int
}

// Thresholds of "fits no known encoding" (see the package doc). Masks in the wild hold one defect value,
// a handful of class ids, or 0/255 anti-aliased at the edges; a photo or heatmap holds hundreds of levels.
const (
	// FewClassIDs distinct non-zero values are always taken as class ids, whatever their counts
	// (253..255, 1..5).
	FewClassIDs = 8
	// MaxClassIDs distinct non-zero values are the most a mask may hold without a warning when no single
	// value holds more than half of its defect pixels (more than that is not a set of class ids).
	MaxClassIDs = 32
	// maxTallied bounds the distinct values counted exactly in 16-bit and colour masks, so that a photo
	// given as a mask costs bounded memory; above it the warning says "more than".
	maxTallied = 4096
	// jpegMidLow..jpegMidHigh is "neither background nor defect" in a JPEG mask: compression noise stays
	// near 0 and 255, so only edges land here.
	jpegMidLow, jpegMidHigh = 32, 223
	// jpegMidShare is the share of mid-grey pixels from which a JPEG mask looks like a photo.
	jpegMidShare = 0.25
)

// DecodeMask reads a mask file (PNG, BMP, TIFF or JPEG) and applies the mask rule of its encoding.
func DecodeMask(r io.Reader) (Mask, error) {
	img, format, err := Decode(r)
	if err != nil {
		return Mask{}, fmt.Errorf("decode mask: %w", err)
	}
	return MaskOf(img, format), nil
}

// MaskOf applies the mask rule to a decoded image; format is the name Decode returned ("png", "jpeg",
// ...). Only "jpeg" changes the rule (lossy: grey >= 128); any other name is taken as lossless.
func MaskOf(img image.Image, format string) Mask {
	b := img.Bounds()
	m := Mask{W: b.Dx(), H: b.Dy()}
	m.Pix = make([]bool, m.W*m.H)
	if format == "jpeg" {
		jpegMask(img, &m)
	} else {
		switch im := img.(type) {
		case *image.Gray:
			grayMask(im, &m)
		case *image.Gray16:
			gray16Mask(im, &m)
		case *image.Paletted:
			palettedMask(im, &m)
		case *image.NRGBA:
			rgba8Mask(im.Pix, im.Stride, &m)
		case *image.RGBA:
			rgba8Mask(im.Pix, im.Stride, &m)
		default:
			genericMask(img, &m)
		}
	}
	if m.Defects == len(m.Pix) && len(m.Pix) > 1 {
		m.Warnings = append(m.Warnings, fmt.Sprintf("every pixel of the %dx%d mask reads as defect (%s): masks need a black (0) or transparent background", m.W, m.H, m.Encoding))
	}
	return m
}

// BinaryMask applies the mask rule to an image decoded without its format: *image.YCbCr and *image.CMYK
// can only come from a JPEG and get the JPEG rule, everything else the lossless one. A grey JPEG decodes
// to *image.Gray like a grey PNG, so callers that have the file should call DecodeMask instead.
func BinaryMask(img image.Image) (mask []bool, w, h int) {
	format := ""
	switch img.(type) {
	case *image.YCbCr, *image.CMYK:
		format = "jpeg"
	}
	m := MaskOf(img, format)
	return m.Pix, m.W, m.H
}

// levels summarises the non-background values of a mask.
type levels struct {
	distinct  int    // distinct non-background values
	over      bool   // more than maxTallied distinct values: distinct is a lower bound
	dominant  uint64 // the most frequent non-background value
	dominantN int    // its pixel count
	defects   int
}

// kind names the encoding the values fit, or "" when they fit none.
func (l levels) kind(value func(uint64) string) string {
	switch {
	case l.defects == 0:
		return "empty"
	case l.distinct == 1:
		return "0/" + value(l.dominant)
	case l.distinct <= FewClassIDs:
		return "class ids"
	case 2*l.dominantN > l.defects:
		return "0/" + value(l.dominant) + " anti-aliased"
	case l.distinct <= MaxClassIDs && !l.over:
		return "class ids"
	}
	return ""
}

func (l levels) count() string {
	if l.over {
		return "more than " + strconv.Itoa(l.distinct)
	}
	return strconv.Itoa(l.distinct)
}

func histLevels(hist *[256]int) levels {
	var l levels
	for v := 1; v < 256; v++ {
		n := hist[v]
		if n == 0 {
			continue
		}
		l.distinct++
		l.defects += n
		if n > l.dominantN {
			l.dominant, l.dominantN = uint64(v), n
		}
	}
	return l
}

// tally counts non-background values of 16-bit and colour masks. Masks are long runs of one value, so
// runs are counted before they reach the map.
type tally struct {
	n    map[uint64]int
	over bool
	run  uint64
	runN int
}

func (t *tally) add(v uint64) {
	if t.runN > 0 && v == t.run {
		t.runN++
		return
	}
	t.flush()
	t.run, t.runN = v, 1
}

func (t *tally) flush() {
	if t.runN == 0 {
		return
	}
	if t.n == nil {
		t.n = make(map[uint64]int)
	}
	if c, ok := t.n[t.run]; ok || len(t.n) < maxTallied {
		t.n[t.run] = c + t.runN
	} else {
		t.over = true
	}
	t.runN = 0
}

func (t *tally) levels(defects int) levels {
	t.flush()
	l := levels{distinct: len(t.n), over: t.over, defects: defects}
	for v, n := range t.n {
		if n > l.dominantN || (n == l.dominantN && v < l.dominant) {
			l.dominant, l.dominantN = v, n
		}
	}
	return l
}

func greyWarning(l levels) string {
	return fmt.Sprintf("mask has %s distinct grey levels; expected 0/255, 0/1 or class ids: is this an image rather than a mask? (every non-zero pixel is read as defect)", l.count())
}

func setGrey(m *Mask, l levels, prefix string) {
	k := l.kind(func(v uint64) string { return strconv.FormatUint(v, 10) })
	switch k {
	case "":
		m.Encoding = prefix + "grey"
		m.Warnings = append(m.Warnings, greyWarning(l))
	case "class ids":
		m.Encoding = prefix + k
	default:
		m.Encoding = prefix + "grey " + k
	}
}

func grayMask(g *image.Gray, m *Mask) {
	var hist [256]int
	for y := 0; y < m.H; y++ {
		row := g.Pix[y*g.Stride : y*g.Stride+m.W]
		out := m.Pix[y*m.W : (y+1)*m.W]
		for x, v := range row {
			hist[v]++
			out[x] = v != 0
		}
	}
	l := histLevels(&hist)
	if softEdges(&hist) {
		// 0/255 whose in-between values are edge blur or compression noise (anti-aliased edges, or a lossy
		// mask saved as PNG, as the Magnetic-Tile set's are): scattered faint values far from any defect
		// would otherwise become defect pixels. Read at the midpoint, as JPEG masks are.
		m.Defects = 0
		for y := 0; y < m.H; y++ {
			row := g.Pix[y*g.Stride : y*g.Stride+m.W]
			out := m.Pix[y*m.W : (y+1)*m.W]
			for x, v := range row {
				out[x] = v >= MaskThreshold
				if out[x] {
					m.Defects++
				}
			}
		}
		m.Encoding = "grey 0/255 with soft edges (read at >= 128)"
		return
	}
	m.Defects = l.defects
	setGrey(m, l, "")
}

// softEdges reports an 8-bit mask of black and white with blurred or noisy edges: more than two levels,
// at least 70 % of its non-zero pixels near the ends (1..31 or 224..255), and at least as many bright
// (>= 128) as dark ones. Class ids (all small, or all high such as 253..255), 0/1 and photos (levels
// spread evenly) do not fit. Measured on the Magnetic-Tile set: every mask with more than two levels has
// 74 % or more of its pixels near the ends.
func softEdges(hist *[256]int) bool {
	lo, hi, ends, levels := 0, 0, 0, 0
	for v := 1; v < 256; v++ {
		n := hist[v]
		if n == 0 {
			continue
		}
		levels++
		if v < MaskThreshold {
			lo += n
		} else {
			hi += n
		}
		if v < 32 || v >= 224 {
			ends += n
		}
	}
	return levels > 2 && lo > 0 && hi >= lo && 10*ends >= 7*(lo+hi)
}

func gray16Mask(g *image.Gray16, m *Mask) {
	var t tally
	for y := 0; y < m.H; y++ {
		row := g.Pix[y*g.Stride : y*g.Stride+2*m.W]
		out := m.Pix[y*m.W : (y+1)*m.W]
		for x := range out {
			v := uint16(row[2*x])<<8 | uint16(row[2*x+1])
			if v != 0 {
				out[x] = true
				m.Defects++
				t.add(uint64(v))
			}
		}
	}
	setGrey(m, t.levels(m.Defects), "16-bit ")
}

func palettedMask(p *image.Paletted, m *Mask) {
	var hist [256]int
	for y := 0; y < m.H; y++ {
		row := p.Pix[y*p.Stride : y*p.Stride+m.W]
		out := m.Pix[y*m.W : (y+1)*m.W]
		for x, v := range row {
			hist[v]++
			out[x] = v != 0
		}
	}
	l := histLevels(&hist)
	m.Defects = l.defects
	m.Encoding = "palette"
	if l.kind(func(uint64) string { return "" }) == "" {
		m.Warnings = append(m.Warnings, fmt.Sprintf("palette mask uses %d distinct colour indices; expected index 0 for the background and a few class indices: is this an image rather than a mask? (every index other than 0 is read as defect)", l.distinct))
	}
	// A palette built from the colours in order of appearance (an "adaptive" conversion) can put black at
	// any index: then the background is read as defect. Say so when a used index other than 0 is black.
	if len(p.Palette) > 0 && !blackOrClear(p.Palette[0]) {
		for i := 1; i < len(p.Palette) && i < 256; i++ {
			if hist[i] > 0 && blackOrClear(p.Palette[i]) {
				r, g, b, _ := p.Palette[0].RGBA()
				m.Warnings = append(m.Warnings, fmt.Sprintf("palette index %d is black but is read as defect, while index 0 (the background) is #%02x%02x%02x: is the palette out of order (mask inverted)?", i, r>>8, g>>8, b>>8))
				break
			}
		}
	}
}

func blackOrClear(c color.Color) bool {
	r, g, b, a := c.RGBA()
	return a == 0 || r|g|b == 0
}

func colourWarning(l levels) string {
	return fmt.Sprintf("mask has %s distinct colours; expected a black (or transparent) background and one colour per class: is this an image rather than a mask? (every pixel that is not black is read as defect)", l.count())
}

func setColour(m *Mask, t *tally, translucent bool) {
	m.Encoding = "rgb"
	if translucent {
		m.Encoding = "rgba"
	}
	l := t.levels(m.Defects)
	if l.kind(func(uint64) string { return "" }) == "" {
		m.Warnings = append(m.Warnings, colourWarning(l))
	}
}

// rgba8Mask applies the colour rule to 8-bit RGBA rows: pix and stride of an *image.NRGBA, or of an
// *image.RGBA (PNG RGB and BMP decode to premultiplied pixels; the rule is the same, as a transparent
// pixel is black there).
func rgba8Mask(pix []uint8, stride int, m *Mask) {
	var t tally
	translucent := false
	for y := 0; y < m.H; y++ {
		row := pix[y*stride : y*stride+4*m.W]
		out := m.Pix[y*m.W : (y+1)*m.W]
		for x := range out {
			s := row[4*x : 4*x+4 : 4*x+4]
			if s[3] != 255 {
				translucent = true
			}
			if s[3] != 0 && s[0]|s[1]|s[2] != 0 {
				out[x] = true
				m.Defects++
				t.add(uint64(s[0])<<24 | uint64(s[1])<<16 | uint64(s[2])<<8 | uint64(s[3]))
			}
		}
	}
	setColour(m, &t, translucent)
}

// genericMask covers the decoder outputs without a fast path (16-bit colour, grey+alpha, CMYK, alpha):
// non-premultiplied 16-bit colour, then the RGBA rule.
func genericMask(img image.Image, m *Mask) {
	b := img.Bounds()
	var t tally
	translucent := false
	for y := 0; y < m.H; y++ {
		for x := 0; x < m.W; x++ {
			c := color.NRGBA64Model.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
			if c.A != 0xffff {
				translucent = true
			}
			if c.A != 0 && c.R|c.G|c.B != 0 {
				m.Pix[y*m.W+x] = true
				m.Defects++
				t.add(uint64(c.R)<<48 | uint64(c.G)<<32 | uint64(c.B)<<16 | uint64(c.A))
			}
		}
	}
	setColour(m, &t, translucent)
}

// jpegMask thresholds the brightest channel at MaskThreshold: compression leaves small non-zero values
// around edges, and for a grey JPEG the brightest channel is the grey value. A colour JPEG mask (red on
// black) counts by its colour's brightness, not its luma, which a pure red would fall below.
func jpegMask(img image.Image, m *Mask) {
	mid := 0
	put := func(i int, v uint8) {
		if v >= MaskThreshold {
			m.Pix[i] = true
			m.Defects++
		}
		if v >= jpegMidLow && v <= jpegMidHigh {
			mid++
		}
	}
	b := img.Bounds()
	switch im := img.(type) {
	case *image.Gray:
		for y := 0; y < m.H; y++ {
			row := im.Pix[y*im.Stride : y*im.Stride+m.W]
			for x, v := range row {
				put(y*m.W+x, v)
			}
		}
	case *image.YCbCr:
		for y := 0; y < m.H; y++ {
			for x := 0; x < m.W; x++ {
				yi, ci := im.YOffset(b.Min.X+x, b.Min.Y+y), im.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(im.Y[yi], im.Cb[ci], im.Cr[ci])
				put(y*m.W+x, max(r, g, bl))
			}
		}
	default:
		for y := 0; y < m.H; y++ {
			for x := 0; x < m.W; x++ {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				put(y*m.W+x, max(c.R, c.G, c.B))
			}
		}
	}
	m.Encoding = "jpeg"
	if n := len(m.Pix); n > 0 && float64(mid) > jpegMidShare*float64(n) {
		m.Warnings = append(m.Warnings, fmt.Sprintf("%.0f%% of the JPEG mask's pixels are mid-grey (%d..%d); expected a near-black background and near-white defects: is this an image rather than a mask? (pixels of %d and above are read as defect)",
			100*float64(mid)/float64(n), jpegMidLow, jpegMidHigh, MaskThreshold))
	}
}
