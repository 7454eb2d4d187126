//go:build !js

package mapio

import (
	"fmt"
	"io"
	"os"

	"github.com/rdre-studio/studio/backend/imageio"
)

// ReadMask decodes a ground-truth mask image (any format imageio reads) into a row-major defect mask with
// imageio's rule (grey >= 128 is defect).
func ReadMask(r io.Reader) (mask []bool, w, h int, err error) {
	img, _, err := imageio.Decode(r)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("decode mask: %w", err)
	}
	mask, w, h = imageio.BinaryMask(img)
	return mask, w, h, nil
}

// ReadMaskFile reads a mask file; errors name the file.
func ReadMaskFile(path string) (mask []bool, w, h int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read mask: %w", err)
	}
	defer f.Close()
	mask, w, h, err = ReadMask(f)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read mask %s: %w", path, err)
	}
	return mask, w, h, nil
}
