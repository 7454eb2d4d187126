package metrics

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"strings"
)

// The state file: a gzip stream of
//
//	"RDRE-METRICS-STATE 1\n"
//	uvarint length, then a JSON header: the options, the image records, the notes, the source names
//	per source: uvarint n, n normal entries (uvarint key delta, uvarint count);
//	            uvarint m, m defect entries (uvarint key delta, uvarint cell, uvarint count)
//	with Detail, per image: uvarint n, n entries (uvarint key delta, uvarint count)
//	the CRC-32 (IEEE) of everything above, 4 bytes little-endian
//
// Keys are the value keys of the histograms (key64 of the value); when every value is a float32 value,
// the file holds the float32 key instead (keys32), about half as many bytes.
const stateMagic = "RDRE-METRICS-STATE 1\n"

type fileOptions struct {
	FPRLimit        float64   `json:"fpr_limit"`
	FPRLimits       []float64 `json:"fpr_limits,omitempty"`
	Threshold       *float64  `json:"threshold,omitempty"`
	ThresholdSource string    `json:"threshold_source,omitempty"`
	ImageThreshold  *float64  `json:"image_threshold,omitempty"`
	Detail          bool      `json:"detail,omitempty"`
	NoPerKind       bool      `json:"no_per_kind,omitempty"`
}

type fileImage struct {
	Key        string    `json:"key"`
	Kind       string    `json:"kind"`
	Label      int       `json:"label"`
	W          int       `json:"w"`
	H          int       `json:"h"`
	Score      float64   `json:"score"`
	MaxScore   float64   `json:"max_score"`
	Defects    int64     `json:"defects"`
	SegTP      int64     `json:"seg_tp,omitempty"`
	SegFP      int64     `json:"seg_fp,omitempty"`
	Areas      []int64   `json:"areas,omitempty"`
	CellRegion []int32   `json:"cell_region,omitempty"`
	CellParts  [][]int32 `json:"cell_parts,omitempty"`
	PartSat    []int64   `json:"part_sat,omitempty"`
	PixelAP    *float64  `json:"pixel_ap,omitempty"`
}

type fileHeader struct {
	Options fileOptions `json:"options"`
	Images  []fileImage `json:"images"`
	Notes   []Note      `json:"notes"`
	Sources []string    `json:"sources"`
	Keys32  bool        `json:"keys32"`
}

// WriteState writes st to w in the state file format.
func WriteState(w io.Writer, st *State) error {
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	crc := crc32.NewIEEE()
	bw := bufio.NewWriterSize(io.MultiWriter(gz, crc), 1<<16)
	o := st.opt
	hd := fileHeader{Options: fileOptions{FPRLimit: o.FPRLimit, FPRLimits: o.FPRLimits, Threshold: o.Threshold, ThresholdSource: o.ThresholdSource,
		ImageThreshold: o.ImageThreshold, Detail: o.Detail, NoPerKind: o.NoPerKind}, Notes: st.Notes, Keys32: true}
	if hd.Notes == nil {
		hd.Notes = []Note{}
	}
	for i, p := range st.images {
		fi := fileImage{Key: p.img.Key, Kind: p.img.Kind, Label: p.img.Label, W: p.img.W, H: p.img.H, Score: p.score, MaxScore: p.maxScore,
			Defects: p.defects, SegTP: p.segTP, SegFP: p.segFP, Areas: p.areas, CellRegion: p.cellRegion, CellParts: p.cellParts, PartSat: p.partSat}
		if o.Detail {
			fi.PixelAP = st.ap[i]
		}
		hd.Images = append(hd.Images, fi)
	}
	for n := range st.src {
		hd.Sources = append(hd.Sources, n)
	}
	slices.Sort(hd.Sources)
	all := func(yield func([]uint64) bool) {
		for _, n := range hd.Sources {
			if !yield(st.src[n].nk) || !yield(st.src[n].dk) {
				return
			}
		}
		for i := range st.own {
			if !yield(st.own[i].nk) {
				return
			}
		}
	}
	for keys := range all {
		for _, k := range keys {
			if v := unkey64(k); float64(float32(v)) != v {
				hd.Keys32 = false
			}
		}
	}
	enc := func(k uint64) uint64 { return k }
	if hd.Keys32 {
		enc = func(k uint64) uint64 { return uint64(key(float32(unkey64(k)))) }
	}
	raw, err := json.Marshal(hd)
	if err != nil {
		return err
	}
	var buf [binary.MaxVarintLen64]byte
	put := func(v uint64) { bw.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	bw.WriteString(stateMagic)
	put(uint64(len(raw)))
	bw.Write(raw)
	normals := func(h *hist) {
		put(uint64(len(h.nk)))
		var prev uint64
		for i, k := range h.nk {
			e := enc(k)
			put(e - prev)
			put(h.nc[i])
			prev = e
		}
	}
	for _, n := range hd.Sources {
		h := st.src[n]
		normals(h)
		put(uint64(len(h.dk)))
		var prev uint64
		for i, k := range h.dk {
			e := enc(k)
			put(e - prev)
			put(uint64(h.dc[i]))
			put(h.dn[i])
			prev = e
		}
	}
	for i := range st.own {
		normals(&st.own[i])
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := gz.Write(sum[:]); err != nil {
		return err
	}
	return gz.Close()
}

// crcReader hashes what it reads.
type crcReader struct {
	r   *bufio.Reader
	crc uint32
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc = crc32.Update(c.crc, crc32.IEEETable, []byte{b})
	}
	return b, err
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p[:n])
	return n, err
}

var errState = errors.New("metric state")

func serr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errState, fmt.Sprintf(format, a...))
}

// ReadState reads a state file, checking it whole: its checksum, the order and ranges of every entry,
// and that the histograms account for exactly the pixels of their images.
func ReadState(r io.Reader) (*State, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, serr("not a state file (gzip: %v)", err)
	}
	cr := &crcReader{r: bufio.NewReaderSize(gz, 1<<16)}
	magic := make([]byte, len(stateMagic))
	if _, err := io.ReadFull(cr, magic); err != nil || string(magic) != stateMagic {
		return nil, serr("not a state file of this version (want %q)", strings.TrimSpace(stateMagic))
	}
	get := func() (uint64, error) {
		v, err := binary.ReadUvarint(cr)
		if err != nil {
			return 0, serr("truncated: %v", err)
		}
		return v, nil
	}
	n, err := get()
	if err != nil {
		return nil, err
	}
	if n > 1<<30 {
		return nil, serr("header of %d bytes", n)
	}
	raw := make([]byte, 0, min(n, 1<<20))
	for uint64(len(raw)) < n {
		chunk := make([]byte, min(n-uint64(len(raw)), 1<<20))
		if _, err := io.ReadFull(cr, chunk); err != nil {
			return nil, serr("truncated header")
		}
		raw = append(raw, chunk...)
	}
	var hd fileHeader
	if err := json.Unmarshal(raw, &hd); err != nil {
		return nil, serr("header: %v", err)
	}
	fo := hd.Options
	st := &State{opt: Options{FPRLimit: fo.FPRLimit, FPRLimits: fo.FPRLimits, Threshold: fo.Threshold, ThresholdSource: fo.ThresholdSource,
		ImageThreshold: fo.ImageThreshold, Detail: fo.Detail, NoPerKind: fo.NoPerKind}, src: map[string]*hist{}, Notes: hd.Notes}
	if st.opt, err = st.opt.normalized(); err != nil {
		return nil, serr("options: %v", err)
	}
	var cells, pixels int64
	srcPixels := map[string][2]int64{} // normal, defect pixels
	for i, fi := range hd.Images {
		if i > 0 && fi.Key <= hd.Images[i-1].Key {
			return nil, serr("images out of order at %q", fi.Key)
		}
		if fi.W <= 0 || fi.H <= 0 || int64(fi.W)*int64(fi.H) > maxImagePixels || (fi.Label != 0 && fi.Label != 1) ||
			fi.Defects < 0 || fi.Defects > int64(fi.W)*int64(fi.H) || math.IsNaN(fi.Score) || math.IsInf(fi.Score, 0) {
			return nil, serr("image %q: bad record", fi.Key)
		}
		p := &prepared{img: &Image{Key: fi.Key, Kind: fi.Kind, Label: fi.Label, W: fi.W, H: fi.H}, score: fi.Score, maxScore: fi.MaxScore,
			defects: fi.Defects, segTP: fi.SegTP, segFP: fi.SegFP, areas: fi.Areas, cellRegion: fi.CellRegion, cellParts: fi.CellParts, partSat: fi.PartSat}
		var area int64
		for _, a := range p.areas {
			if a <= 0 {
				return nil, serr("image %q: region of area %d", fi.Key, a)
			}
			area += a
		}
		if area != p.defects {
			return nil, serr("image %q: regions of %d pixels for %d defect pixels", fi.Key, area, p.defects)
		}
		if p.cellRegion != nil || p.partSat != nil {
			if len(p.cellParts) != len(p.cellRegion) {
				return nil, serr("image %q: cell tables disagree", fi.Key)
			}
			for c, r := range p.cellRegion {
				if r < 0 || int(r) >= len(p.areas) {
					return nil, serr("image %q: cell of region %d", fi.Key, r)
				}
				for _, q := range p.cellParts[c] {
					if q < 0 || int(q) >= len(p.partSat) {
						return nil, serr("image %q: cell of saturation region %d", fi.Key, q)
					}
				}
			}
			for _, s := range p.partSat {
				if s < 1 {
					return nil, serr("image %q: saturation %d", fi.Key, s)
				}
			}
		}
		if st.opt.Detail {
			st.ap = append(st.ap, fi.PixelAP)
		}
		st.images = append(st.images, p)
		cells += int64(p.cells())
		pixels += int64(fi.W) * int64(fi.H)
		c := srcPixels[sourceName(p)]
		c[0] += int64(fi.W)*int64(fi.H) - fi.Defects
		c[1] += fi.Defects
		srcPixels[sourceName(p)] = c
	}
	if pixels > MaxPixels {
		return nil, serr("%d pixels", pixels)
	}
	// Each cell's image, and the pixels each region's cells must account for.
	cellImage := make([]int32, 0, cells)
	cellRegion := make([]int64, 0, cells) // global region
	var regionArea []int64
	for i, p := range st.images {
		base := int64(len(regionArea))
		regionArea = append(regionArea, p.areas...)
		for c := range p.cells() {
			r := int64(c)
			if p.cellRegion != nil {
				r = int64(p.cellRegion[c])
			}
			cellImage, cellRegion = append(cellImage, int32(i)), append(cellRegion, base+r)
		}
	}
	regionSeen := make([]int64, len(regionArea))
	dec := func(e uint64) (uint64, error) { return e, nil }
	if hd.Keys32 {
		dec = func(e uint64) (uint64, error) {
			if e > math.MaxUint32 {
				return 0, serr("key %d", e)
			}
			v := unkey(uint32(e))
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				return 0, serr("key of a non-finite value")
			}
			return key64(float64(v)), nil
		}
	}
	normals := func(h *hist, budget int64) error {
		n, err := get()
		if err != nil {
			return err
		}
		if int64(n) > budget {
			return serr("%d normal entries for %d pixels", n, budget)
		}
		var e, total uint64
		for i := uint64(0); i < n; i++ {
			d, err := get()
			if err != nil {
				return err
			}
			if i > 0 && d == 0 {
				return serr("normal keys out of order")
			}
			e += d
			c, err := get()
			if err != nil {
				return err
			}
			if c == 0 || total+c > uint64(budget) {
				return serr("normal counts beyond the pixels")
			}
			total += c
			k, err := dec(e)
			if err != nil {
				return err
			}
			h.nk, h.nc = append(h.nk, k), append(h.nc, c)
		}
		return nil
	}
	for i, name := range hd.Sources {
		if i > 0 && name <= hd.Sources[i-1] {
			return nil, serr("sources out of order")
		}
		px, ok := srcPixels[name]
		if !ok {
			return nil, serr("source %q has no image", name)
		}
		h := &hist{}
		if err := normals(h, px[0]); err != nil {
			return nil, err
		}
		var sumN, sumD uint64
		for _, c := range h.nc {
			sumN += c
		}
		m, err := get()
		if err != nil {
			return nil, err
		}
		if int64(m) > px[1] {
			return nil, serr("%d defect entries for %d pixels", m, px[1])
		}
		var e uint64
		for j := uint64(0); j < m; j++ {
			d, err := get()
			if err != nil {
				return nil, err
			}
			e += d
			cell, err := get()
			if err != nil {
				return nil, err
			}
			c, err := get()
			if err != nil {
				return nil, err
			}
			if cell >= uint64(cells) || c == 0 || sumD+c > uint64(px[1]) || sourceName(st.images[cellImage[cell]]) != name {
				return nil, serr("defect entry out of range")
			}
			regionSeen[cellRegion[cell]] += int64(c)
			if j > 0 && (d == 0 && uint32(cell) <= h.dc[len(h.dc)-1]) {
				return nil, serr("defect entries out of order")
			}
			sumD += c
			k, err := dec(e)
			if err != nil {
				return nil, err
			}
			h.dk, h.dc, h.dn = append(h.dk, k), append(h.dc, uint32(cell)), append(h.dn, c)
		}
		if int64(sumN) != px[0] || int64(sumD) != px[1] {
			return nil, serr("source %q accounts for %d normal and %d defect pixels, its images have %d and %d", name, sumN, sumD, px[0], px[1])
		}
		st.src[name] = h
	}
	if len(st.src) != len(srcPixels) {
		return nil, serr("%d sources for images of %d", len(st.src), len(srcPixels))
	}
	for r, a := range regionArea {
		if regionSeen[r] != a {
			return nil, serr("region %d of area %d has %d pixels in the histograms", r, a, regionSeen[r])
		}
	}
	if st.opt.Detail {
		st.own = make([]hist, len(st.images))
		for i, p := range st.images {
			budget := int64(p.img.W)*int64(p.img.H) - p.defects
			if err := normals(&st.own[i], budget); err != nil {
				return nil, err
			}
			var s uint64
			for _, c := range st.own[i].nc {
				s += c
			}
			if int64(s) != budget {
				return nil, serr("image %q: %d normal pixels in its histogram, %d in the image", p.img.Key, s, budget)
			}
		}
	}
	want := cr.crc
	var sum [4]byte
	if _, err := io.ReadFull(cr.r, sum[:]); err != nil {
		return nil, serr("truncated: no checksum")
	}
	if binary.LittleEndian.Uint32(sum[:]) != want {
		return nil, serr("checksum mismatch: the file is damaged")
	}
	if _, err := cr.r.ReadByte(); err != io.EOF {
		return nil, serr("data after the checksum")
	}
	return st, nil
}
