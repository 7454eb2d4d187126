package metrics

import (
	"errors"
	"fmt"
	"math"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// Loader reads image i of a streamed evaluation. With mask false only the map is needed (the stream kept
// the ground truth of the first read) and Mask and SatRegions may be left nil.
type Loader func(i int, mask bool) (Image, error)

// ErrStreamFloat64 is returned by the streamed evaluations for a float64 map: float64 values are ranked
// over the whole set at once, so such a set is evaluated in memory (Compute).
var ErrStreamFloat64 = errors.New("evaluate: a float64 map cannot be streamed")

// ComputeStream is Compute over n images read through load, without holding their maps: a first pass
// validates each image, labels its regions and keeps its mask as bits; the sort reads each map twice more
// (a histogram pass and a scatter pass, as Compute's sort does in memory), and the per-image table once
// more. Memory: the sort arrays (4 bytes per normal pixel, 8 per defect pixel), 1 bit per pixel for the
// masks, 4 bytes per defect pixel for the region labels, and the maps being read (one per worker). The
// result is Compute's, bit for bit. A map that changes between the reads is an error.
func ComputeStream(n int, load Loader, opt Options) (*sm.Result, error) {
	opt, err := opt.normalized()
	if err != nil {
		return nil, err
	}
	preps, err := streamPrepare(n, load, opt)
	if err != nil {
		return nil, err
	}
	return computePrepared(preps, opt)
}

// StateOfStream is StateOf over n images read through load, as ComputeStream reads them.
func StateOfStream(n int, load Loader, opt Options) (*State, error) {
	opt, err := opt.normalized()
	if err != nil {
		return nil, err
	}
	preps, err := streamPrepare(n, load, opt)
	if err != nil {
		return nil, err
	}
	return stateOfPrepared(preps, opt)
}

// mapSum is a checksum of a map (the sum of its bit patterns and their sum weighted by position, in
// independent lanes so that it runs at memory speed), to notice a file that changes between the reads of
// a stream.
func mapSum(m []float32) [2]uint64 {
	var a, b uint64
	for i, v := range m {
		x := uint64(math.Float32bits(v))
		a += x
		b += x * uint64(i+1)
	}
	return [2]uint64{a, b}
}

func streamPrepare(n int, load Loader, opt Options) ([]*prepared, error) {
	if n == 0 {
		return nil, errors.New("evaluate: no images")
	}
	preps := make([]*prepared, n)
	if err := parallel(n, opt.Workers, func(i int, s *scratch) error {
		img, err := load(i, true)
		if err != nil {
			return err
		}
		if img.Map64 != nil {
			return ErrStreamFloat64
		}
		im := img
		p, err := prepare(&im, s)
		if err != nil {
			return err
		}
		if opt.Threshold != nil {
			p.countAt(*opt.Threshold)
			p.counted = true
		}
		npx := im.W * im.H
		bits := make([]uint64, (npx+63)/64)
		for j, d := range im.Mask {
			if d {
				bits[j/64] |= 1 << (j % 64)
			}
		}
		sum, key := mapSum(im.Map), im.Key
		im.Map, im.Mask, im.SatRegions = nil, nil, nil
		p.load = func() ([]float32, []bool, error) {
			again, err := load(i, false)
			if err != nil {
				return nil, nil, err
			}
			if again.Key != key || again.Map == nil || len(again.Map) != npx || mapSum(again.Map) != sum {
				return nil, nil, fmt.Errorf("image %q: its map changed while it was evaluated", key)
			}
			mask := make([]bool, npx)
			for j := range mask {
				mask[j] = bits[j/64]&(1<<(j%64)) != 0
			}
			return again.Map, mask, nil
		}
		preps[i] = p
		return nil
	}); err != nil {
		return nil, err
	}
	var total int64
	for _, p := range preps {
		total += int64(p.img.W) * int64(p.img.H)
	}
	if total > MaxPixels {
		return nil, fmt.Errorf("evaluate: %d pixels in all, more than the %d this engine handles", total, int64(MaxPixels))
	}
	return preps, nil
}
