# Regenerates the reader fixtures: python3 gen.py (numpy and PIL with libtiff). Every file holds the 3x5
# map v[y, x] = (y * 5 + x) / 8 - 0.5, so the Go tests know the expected values without reading this.
import numpy as np
from PIL import Image

v = (np.arange(15, dtype=np.float64).reshape(3, 5) / 8) - 0.5
np.save("f4_le.npy", v.astype("<f4"))
np.save("f4_be.npy", v.astype(">f4"))
np.save("f2_le.npy", v.astype("<f2"))
np.save("f8_fortran.npy", np.asfortranarray(v.astype("<f8")))
np.save("f4_1hw.npy", v.astype("<f4")[None])
np.save("f4_hw1.npy", v.astype("<f4")[:, :, None])
np.save("f4_1d.npy", v.astype("<f4").ravel())
np.save("i4.npy", v.astype("<i4"))
im = Image.fromarray(v.astype(np.float32), mode="F")
im.save("f32_raw.tiff")
im.save("f32_deflate.tiff", compression="tiff_adobe_deflate")
im.save("f32_lzw.tiff", compression="tiff_lzw")
im.save("f32_strips.tiff", compression="raw", tiffinfo={278: 1})
Image.fromarray((v * 100 + 100).astype(np.uint8)).save("u8.tiff")
