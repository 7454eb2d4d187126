//go:build !js

package imageio

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// The EXIF parser is this small one rather than a library: the Go EXIF libraries in reach read every tag
// of every IFD (with their own panics recovered inside), bring several dependencies, and none gives the
// byte offset of the tag, which ResetOrientation needs to rewrite it in place. Reading one SHORT from
// IFD0 is a few bounds checks.
//
// It reads through io.ReaderAt with one fixed buffer: it never allocates in proportion to a length that
// the file declares, only ever reads what it needs (a JPEG's segments up to its first scan, a PNG's chunks
// up to its first IDAT), and a truncated or hostile file yields an error, never a panic.

const orientationTag = 0x0112

// errExif is wrapped by every error about a malformed EXIF block or the file structure around it.
var errExif = errors.New("malformed exif")

// tagAt is one orientation tag found in a file.
type tagAt struct {
	value int              // as stored (browsers apply 2..8, treat anything else as 1)
	off   int64            // file offset of the value
	size  int              // 2 (SHORT) or 4 (LONG)
	order binary.ByteOrder // the TIFF block's byte order
	// A PNG eXIf chunk is covered by a CRC over its type and data, which must be recomputed after the
	// value changes; chunk is the offset of its type field, chunkLen the length of type and data.
	png      bool
	chunk    int64
	chunkLen int64
}

type reader struct {
	r   io.ReaderAt
	buf [12]byte
}

// at reads n <= 12 bytes at off into the fixed buffer.
func (a *reader) at(off int64, n int) ([]byte, error) {
	if off < 0 {
		return nil, fmt.Errorf("%w: offset %d", errExif, off)
	}
	b := a.buf[:n]
	k, err := a.r.ReadAt(b, off)
	if k == n {
		return b, nil // ReadAt may report io.EOF along with the last bytes
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("%w: %d bytes at offset %d: %w", errExif, n, off, err)
}

// Orientation returns the EXIF Orientation (1..8) that a JPEG (APP1 "Exif" segment), a PNG (eXIf chunk)
// or a TIFF file declares, as a browser reads it: the first such tag in IFD0, SHORT or LONG. It returns 1
// when the file declares none, declares a value outside 1..8, or is of another format. An error means
// that the file's structure broke before the tag could be found.
func Orientation(r io.ReaderAt) (int, error) {
	tags, err := findOrientation(&reader{r: r}, false)
	if err != nil {
		return 1, fmt.Errorf("exif orientation: %w", err)
	}
	if len(tags) == 0 || tags[0].value < 1 || tags[0].value > 8 {
		return 1, nil
	}
	return tags[0].value, nil
}

// ResetOrientation returns the size bytes of a file read through r with every EXIF orientation tag that
// is not 1 rewritten to 1 (and, in a PNG, the CRC of the eXIf chunk fixed), together with the orientation
// the file declared. Nothing else changes: the result has the same size, and a browser shows it in the
// stored orientation, as every other part of the tool reads it. A file without such a tag comes back as
// it is. An error means the file's metadata could not be read (a caller then serves decoded pixels).
func ResetOrientation(r io.ReaderAt, size int64) (io.Reader, int, error) {
	tags, err := findOrientation(&reader{r: r}, true)
	if err != nil {
		return nil, 1, fmt.Errorf("reset exif orientation: %w", err)
	}
	declared := 1
	if len(tags) > 0 && tags[0].value >= 1 && tags[0].value <= 8 {
		declared = tags[0].value
	}
	type patch struct {
		off  int64
		data []byte
	}
	var patches []patch
	for _, t := range tags {
		if t.value == 1 {
			continue
		}
		one := make([]byte, t.size)
		if t.size == 2 {
			t.order.PutUint16(one, 1)
		} else {
			t.order.PutUint32(one, 1)
		}
		if t.off+int64(t.size) > size {
			return nil, declared, fmt.Errorf("reset exif orientation: %w: tag at %d past the end of a %d-byte file", errExif, t.off, size)
		}
		patches = append(patches, patch{t.off, one})
		if t.png {
			crc := crc32.NewIEEE()
			if _, err := io.Copy(crc, io.NewSectionReader(r, t.chunk, t.off-t.chunk)); err != nil {
				return nil, declared, fmt.Errorf("reset exif orientation: png eXIf chunk: %w", err)
			}
			crc.Write(one)
			rest := t.chunk + t.chunkLen - (t.off + int64(t.size))
			if n, err := io.Copy(crc, io.NewSectionReader(r, t.off+int64(t.size), rest)); err != nil || n != rest {
				return nil, declared, fmt.Errorf("reset exif orientation: png eXIf chunk truncated (%d of %d bytes): %v", n, rest, err)
			}
			sum := binary.BigEndian.AppendUint32(nil, crc.Sum32())
			patches = append(patches, patch{t.chunk + t.chunkLen, sum})
		}
	}
	if len(patches) == 0 {
		return io.NewSectionReader(r, 0, size), declared, nil
	}
	slices.SortFunc(patches, func(a, b patch) int { return cmp.Compare(a.off, b.off) })
	var parts []io.Reader
	pos := int64(0)
	for _, p := range patches {
		if p.off < pos || p.off+int64(len(p.data)) > size {
			return nil, declared, fmt.Errorf("reset exif orientation: %w: overlapping or out-of-file tag at %d", errExif, p.off)
		}
		parts = append(parts, io.NewSectionReader(r, pos, p.off-pos), bytes.NewReader(p.data))
		pos = p.off + int64(len(p.data))
	}
	parts = append(parts, io.NewSectionReader(r, pos, size-pos))
	return io.MultiReader(parts...), declared, nil
}

// findOrientation returns the orientation tags of the file in file order: the first only, or all of
// them (a file may hold several Exif segments; whichever one a viewer picks must say 1).
func findOrientation(a *reader, all bool) ([]tagAt, error) {
	head, err := a.at(0, 8)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil // too short to be any format with EXIF
		}
		return nil, err
	}
	switch {
	case head[0] == 0xFF && head[1] == 0xD8:
		return jpegOrientation(a, all)
	case string(head) == "\x89PNG\r\n\x1a\n":
		return pngOrientation(a, all)
	case string(head[:4]) == "II*\x00" || string(head[:4]) == "MM\x00*":
		t, err := tiffOrientation(a, 0, 1<<32)
		if err != nil || t == nil {
			return nil, err
		}
		return []tagAt{*t}, nil
	}
	return nil, nil
}

// jpegOrientation walks the marker segments up to the first scan (metadata precedes it).
func jpegOrientation(a *reader, all bool) ([]tagAt, error) {
	var tags []tagAt
	pos := int64(2)
	for {
		b, err := a.at(pos, 2)
		if err != nil {
			return tags, fmt.Errorf("jpeg marker: %w", err)
		}
		if b[0] != 0xFF {
			return tags, fmt.Errorf("%w: jpeg: no marker at offset %d", errExif, pos)
		}
		marker := b[1]
		switch {
		case marker == 0xFF: // fill byte before a marker
			pos++
			continue
		case marker == 0xDA || marker == 0xD9: // start of scan, end of image: no more metadata
			return tags, nil
		case marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7): // markers without a length
			pos += 2
			continue
		}
		b, err = a.at(pos+2, 2)
		if err != nil {
			return tags, fmt.Errorf("jpeg segment length: %w", err)
		}
		length := int64(binary.BigEndian.Uint16(b))
		if length < 2 {
			return tags, fmt.Errorf("%w: jpeg segment at %d has length %d", errExif, pos, length)
		}
		if marker == 0xE1 && length >= 2+6 {
			id, err := a.at(pos+4, 6)
			if err != nil {
				return tags, fmt.Errorf("jpeg app1: %w", err)
			}
			// "Exif\0\0" by the standard; some writers pad with 0xFF instead of the second NUL.
			if string(id[:5]) == "Exif\x00" && (id[5] == 0 || id[5] == 0xFF) {
				t, err := tiffOrientation(a, pos+10, length-8)
				if err != nil {
					return tags, fmt.Errorf("jpeg exif segment at %d: %w", pos, err)
				}
				if t != nil {
					tags = append(tags, *t)
					if !all {
						return tags, nil
					}
				}
			}
		}
		pos += 2 + length
	}
}

// pngOrientation walks the chunks up to the first IDAT: eXIf must precede the image data, and viewers
// do not look for it after.
func pngOrientation(a *reader, all bool) ([]tagAt, error) {
	var tags []tagAt
	pos := int64(8)
	for {
		b, err := a.at(pos, 8)
		if err != nil {
			return tags, fmt.Errorf("png chunk: %w", err)
		}
		n := int64(binary.BigEndian.Uint32(b))
		if n > 0x7fffffff {
			return tags, fmt.Errorf("%w: png chunk at %d claims %d bytes", errExif, pos, n)
		}
		switch string(b[4:8]) {
		case "IDAT", "IEND":
			return tags, nil
		case "eXIf":
			t, err := tiffOrientation(a, pos+8, n)
			if err != nil {
				return tags, fmt.Errorf("png eXIf chunk at %d: %w", pos, err)
			}
			if t != nil {
				t.png, t.chunk, t.chunkLen = true, pos+4, 4+n
				tags = append(tags, *t)
				if !all {
					return tags, nil
				}
			}
		}
		pos += 12 + n
	}
}

// tiffOrientation finds the orientation tag in IFD0 of the TIFF structure at base, n bytes long. It
// returns nil when IFD0 has none (or has one of a type viewers ignore).
func tiffOrientation(a *reader, base, n int64) (*tagAt, error) {
	if n < 8 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a TIFF header", errExif, n)
	}
	b, err := a.at(base, 8)
	if err != nil {
		return nil, err
	}
	var order binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: byte order %q", errExif, b[:2])
	}
	if order.Uint16(b[2:]) != 42 {
		return nil, fmt.Errorf("%w: TIFF magic %d, want 42", errExif, order.Uint16(b[2:]))
	}
	ifd := int64(order.Uint32(b[4:]))
	if ifd < 8 || ifd+2 > n {
		return nil, fmt.Errorf("%w: IFD0 at %d outside the %d-byte block", errExif, ifd, n)
	}
	b, err = a.at(base+ifd, 2)
	if err != nil {
		return nil, err
	}
	count := int64(order.Uint16(b))
	for i := int64(0); i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > n {
			return nil, fmt.Errorf("%w: IFD0 entry %d of %d past the %d-byte block", errExif, i, count, n)
		}
		b, err := a.at(base+e, 12)
		if err != nil {
			return nil, err
		}
		if order.Uint16(b) != orientationTag {
			continue
		}
		typ, cnt := order.Uint16(b[2:]), order.Uint32(b[4:])
		if cnt == 0 {
			return nil, nil
		}
		switch typ {
		case 3: // SHORT, what the standard says and what every writer uses
			return &tagAt{value: int(order.Uint16(b[8:])), off: base + e + 8, size: 2, order: order}, nil
		case 4: // LONG, seen from a few writers; some readers accept it
			v := order.Uint32(b[8:])
			if v > 8 {
				v = 0 // out of range either way; keeps int(v) positive where int is 32 bits
			}
			return &tagAt{value: int(v), off: base + e + 8, size: 4, order: order}, nil
		}
		return nil, nil
	}
	return nil, nil
}
