package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
)

// The functions here predict, from an image's header alone, how many bytes
// the standard library's and x/image's decoders allocate for it, so that
// ProcessAvatar can refuse a decompression bomb before decoding it. Each
// follows what its decoder allocates (the pixel buffers it makes and its
// working memory); where the header leaves a choice open, the larger one is
// counted. The decoders allocate pixels only from the dimensions their
// header declares and refuse data that does not fit them (a PNG with
// pixels left over, a GIF frame outside its screen, a WebP whose bitstream
// size differs from its VP8X canvas), so the header bounds the decode.

// encodeOverhead covers the JPEG encoder, its output buffer (a 512x512
// JPEG, even of noise, is under 1 MiB, and the buffer's doublings allocate
// up to 4 times what it holds) and the decoders' fixed tables.
const encodeOverhead = 4 << 20

// resizeCost is what squareAvatar allocates for a w x h source: the box
// reduction, the kernel scaler's buffer of n x rows float64 quads and the
// n x n destination.
func resizeCost(w, h int) int64 {
	side := int64(min(w, h))
	n := min(side, AvatarSize)
	rows, reduced := side, int64(0)
	if f := side / AvatarSize; f >= 2 {
		rows = side / f
		reduced = 4 * rows * rows
	}
	return reduced + 32*n*rows + 4*n*n + encodeOverhead
}

// pngDecodeCost follows image/png: one image of 1 (grey, paletted), 2
// (16-bit grey), 4 (8-bit colour, or 8-bit grey with a tRNS chunk) or 8
// (16-bit colour, or 16-bit grey with tRNS) bytes a pixel, the same again
// for the passes of an Adam7-interlaced image, and two rows.
func pngDecodeCost(data []byte, cfg image.Config) (int64, string, error) {
	if len(data) < 33 || string(data[12:16]) != "IHDR" {
		return 0, "", errors.New("png: IHDR is not the first chunk")
	}
	depth, colorType, interlaced := data[24], data[25], data[28] != 0
	transparent := pngHasTRNS(data)
	var bpp int64
	switch {
	case colorType == 3:
		bpp = 1
	case colorType == 0 && !transparent:
		bpp = map[bool]int64{true: 2, false: 1}[depth == 16]
	case depth == 16:
		bpp = 8
	default:
		bpp = 4
	}
	cost := bpp * int64(cfg.Width) * int64(cfg.Height)
	if interlaced {
		cost *= 2
	}
	cost += 2 * (8*int64(cfg.Width) + 1)

	kind := map[byte]string{0: "greyscale", 2: "RGB", 3: "paletted", 4: "greyscale+alpha", 6: "RGBA"}[colorType]
	kind = fmt.Sprintf("%d-bit %s PNG", depth, kind)
	if interlaced {
		kind = "interlaced " + kind
	}
	return cost, kind, nil
}

// pngHasTRNS reports whether a tRNS chunk comes before the first IDAT, or
// whether the chunks cannot be followed that far (then it may).
func pngHasTRNS(data []byte) bool {
	for i := 8; i+8 <= len(data); {
		n := int64(binary.BigEndian.Uint32(data[i:]))
		switch string(data[i+4 : i+8]) {
		case "tRNS":
			return true
		case "IDAT":
			return false
		}
		next := int64(i) + 12 + n
		if next > int64(len(data)) {
			break
		}
		i = int(next)
	}
	return true
}

// jpegComponent is one colour component of a JPEG's frame header.
type jpegComponent struct{ id, h, v int }

// jpegDecodeCost follows image/jpeg: planes of whole 8x8 blocks at the
// frame's subsampling, 4 bytes of coefficients per sample for a
// progressive JPEG (kept until the last scan), and a second, 4-byte image
// when the decoder converts CMYK or RGB (Adobe transform 0, or components
// named R, G, B) at the end.
func jpegDecodeCost(data []byte, cfg image.Config) (int64, string, error) {
	comps, progressive, adobeRGB, err := readJPEGFrame(data)
	if err != nil {
		return 0, "", err
	}
	w, h := int64(cfg.Width), int64(cfg.Height)
	h0, v0 := int64(comps[0].h), int64(comps[0].v)
	mxx, myy := (w+8*h0-1)/(8*h0), (h+8*v0-1)/(8*v0)

	var cost int64
	kind := "greyscale"
	if len(comps) == 1 {
		cost = 64 * mxx * myy
	} else {
		pw, ph := 8*h0*mxx, 8*v0*myy
		hr, vr := max(1, h0/int64(comps[1].h)), max(1, v0/int64(comps[1].v))
		cost = pw*ph + 2*((pw+hr-1)/hr)*((ph+vr-1)/vr)
		kind = map[int64]string{0x11: "4:4:4", 0x12: "4:4:0", 0x21: "4:2:2", 0x22: "4:2:0", 0x41: "4:1:1", 0x42: "4:1:0"}[hr<<4|vr]
		switch {
		case len(comps) == 4:
			cost += 64*int64(comps[3].h*comps[3].v)*mxx*myy + 4*w*h
			kind = "CMYK"
		case adobeRGB || comps[0].id == 'R' && comps[1].id == 'G' && comps[2].id == 'B':
			cost += 4 * w * h
			kind += " RGB"
		}
	}
	if progressive {
		for _, c := range comps {
			cost += 256 * mxx * myy * int64(c.h*c.v)
		}
		kind = "progressive " + kind
	} else {
		kind = "baseline " + kind
	}
	return cost, kind + " JPEG", nil
}

// readJPEGFrame walks a JPEG's markers the way image/jpeg does and returns
// the components of its first frame header (SOF0, SOF1 or SOF2), whether
// that frame is progressive, and whether any Adobe APP14 segment asks for
// no colour transform (RGB). Entropy-coded data is skipped by scanning for
// the next marker.
func readJPEGFrame(data []byte) (comps []jpegComponent, progressive, adobeRGB bool, err error) {
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xFF {
			i++ // entropy-coded data
			continue
		}
		m := data[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0x00, m == 0x01, m == 0xD8, 0xD0 <= m && m <= 0xD7: // stuffed byte, TEM, SOI, RSTn
			i += 2
			continue
		case m == 0xD9: // EOI
			i = len(data)
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			break
		}
		seg := data[i+4 : i+2+n]
		switch {
		case (m == 0xC0 || m == 0xC1 || m == 0xC2) && comps == nil:
			if comps, err = readJPEGComponents(seg); err != nil {
				return nil, false, false, err
			}
			progressive = m == 0xC2
		case m == 0xEE && len(seg) >= 12 && string(seg[:5]) == "Adobe" && seg[11] == 0:
			adobeRGB = true
		}
		i += 2 + n
	}
	if comps == nil {
		return nil, false, false, errors.New("jpeg: no frame header")
	}
	return comps, progressive, adobeRGB, nil
}

// readJPEGComponents reads the components of a frame header segment.
func readJPEGComponents(seg []byte) ([]jpegComponent, error) {
	if len(seg) < 6 {
		return nil, errors.New("jpeg: short frame header")
	}
	n := int(seg[5])
	if n != 1 && n != 3 && n != 4 || len(seg) < 6+3*n {
		return nil, errors.New("jpeg: unsupported number of components")
	}
	comps := make([]jpegComponent, n)
	for i := range comps {
		c := seg[6+3*i:]
		comps[i] = jpegComponent{id: int(c[0]), h: int(c[1] >> 4), v: int(c[1] & 0x0f)}
		if comps[i].h < 1 || comps[i].h > 4 || comps[i].v < 1 || comps[i].v > 4 {
			return nil, errors.New("jpeg: bad sampling factor")
		}
		if n == 1 {
			comps[i].h, comps[i].v = 1, 1 // as image/jpeg: one component is never subsampled
		}
	}
	return comps, nil
}

// gifDecodeCost follows image/gif, which decodes the first frame only: a
// paletted image no larger than the logical screen (it refuses a frame
// that is), and a second copy when that frame is interlaced.
func gifDecodeCost(data []byte, cfg image.Config) (int64, string, error) {
	return 2*int64(cfg.Width)*int64(cfg.Height) + 4<<10, "GIF", nil
}

// webpDecodeCost follows x/image/webp: a lossy (VP8) picture decodes into
// 4:2:0 planes of whole 16x16 macroblocks, plus a copy of its compressed
// partitions; an alpha plane takes a byte a pixel, and a losslessly
// compressed one first decodes as a lossless picture; a lossless (VP8L)
// picture takes 4 bytes a pixel, 4 more when its colour-indexing transform
// expands packed pixels, and up to 1 more for its transform and entropy
// sub-images. When the chunks cannot be followed, the largest case counts.
//
// Not counted: the Huffman tables of a lossless picture. x/image caps them
// at 2,600 groups (about 140 MB of tables at worst, whatever the size of
// the picture); real encoders write a few hundred at most, and
// MaxConcurrentDecodes bounds how many such decodes run at once.
func webpDecodeCost(data []byte, cfg image.Config) (int64, string, error) {
	px := int64(cfg.Width) * int64(cfg.Height)
	mbs := (int64(cfg.Width) + 15) / 16 * ((int64(cfg.Height) + 15) / 16)
	lossy := 384*mbs + 16*mbs + int64(len(data))
	lossless := 9*px + int64(len(data))

	alpha, alphaLossless := false, false
	for i := int64(12); i+8 <= int64(len(data)); {
		n := int64(binary.LittleEndian.Uint32(data[i+4:]))
		switch string(data[i : i+4]) {
		case "ALPH":
			alpha, alphaLossless = true, i+8 >= int64(len(data)) || data[i+8]&0x03 != 0
		case "VP8 ":
			cost, kind := lossy, "lossy WebP"
			if alpha {
				cost += px
				kind += " with alpha"
				if alphaLossless {
					cost += lossless
				}
			}
			return cost, kind, nil
		case "VP8L":
			return lossless, "lossless WebP", nil
		}
		i += 8 + n + n&1
	}
	return lossy + px + lossless, "WebP", nil
}
