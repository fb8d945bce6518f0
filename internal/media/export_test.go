package media

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
)

// SetDecodeHook makes every decode call hook while it holds its slot, until
// the returned function restores the previous hook. Tests that use it must
// not run in parallel with others that decode.
func SetDecodeHook(hook func()) (restore func()) {
	prev := decodeHook
	decodeHook = hook
	return func() { decodeHook = prev }
}

// DecodeCost is the memory ProcessAvatar expects data to take, from its
// header, as it checks it against MaxAvatarDecodeBytes.
func DecodeCost(data []byte) (int64, error) {
	contentType, _, _ := strings.Cut(http.DetectContentType(data), ";")
	format, ok := avatarFormats[contentType]
	if !ok {
		return 0, fmt.Errorf("not an accepted type: %s", contentType)
	}
	cfg, err := format.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	cost, _, err := format.decodeCost(data, cfg)
	return cost + resizeCost(cfg.Width, cfg.Height), err
}
