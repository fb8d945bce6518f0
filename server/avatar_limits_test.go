package server_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// P23: the 124 KB PNG of issue 11 (4000x4000, 16-bit RGBA: 128 MB decoded)
// is refused from its header on every transport and engine, with 400
// invalid_argument and a message that says what to do, and the profile
// keeps no avatar.
func TestUpdateMe_AvatarDecodeBombRefused_P23(t *testing.T) {
	t.Parallel()
	bomb := sixteenBitPNG(t, 4000, 4000)
	if len(bomb) > 200<<10 {
		t.Fatalf("fixture is %d bytes, want a small file", len(bomb))
	}
	wantMessage := func(t *testing.T, msg string) {
		t.Helper()
		for _, part := range []string{"4000x4000 16-bit RGBA PNG", "limit is 128 MiB", "8-bit"} {
			if !strings.Contains(msg, part) {
				t.Errorf("message = %q, want it to contain %q", msg, part)
			}
		}
	}
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				a := s.MustAccount(t, "bomb_"+strings.ReplaceAll(string(tr), "-", "_"))
				_, err := tu.Call[flockv1.UpdateMeResponse](t.Context(), s, tr, flockv1connect.UserServiceUpdateMeProcedure, a.AccessToken,
					&flockv1.UpdateMeRequest{Avatar: bomb})
				wantCode(t, err, connect.CodeInvalidArgument)
				var ce *connect.Error
				if !errors.As(err, &ce) {
					t.Fatalf("error %v is not a connect error", err)
				}
				wantMessage(t, ce.Message())
				me := tu.MustCall[flockv1.GetMeResponse](t, s, tu.Connect, flockv1connect.UserServiceGetMeProcedure, a.AccessToken, &flockv1.GetMeRequest{})
				if u := me.GetUser().GetAvatarUrl(); u != "" {
					t.Errorf("avatarUrl = %q after a refused upload", u)
				}
			})
		}
		t.Run("rest multipart", func(t *testing.T) {
			t.Parallel()
			a := s.MustAccount(t, "bomb_form")
			body, ctype := multipartBody(t, nil, "avatar", bomb)
			res, out := rawJSON(t, s, http.MethodPatch, "/api/users/", a.AccessToken, body, ctype)
			if res.StatusCode != http.StatusBadRequest || out["code"] != float64(connect.CodeInvalidArgument) {
				t.Fatalf("multipart PATCH = %d %v, want 400 with code %d", res.StatusCode, out, connect.CodeInvalidArgument)
			}
			wantMessage(t, fmt.Sprint(out["message"]))
		})
	})
}

// sixteenBitPNG returns a valid w x h 16-bit RGBA PNG, all transparent.
// Its zlib stream repeats one flushed deflate segment of 1 MiB of zeros
// (its back-references only ever reach zeros), so building 128 MB of rows
// costs nothing; the Adler-32 of n zeros is n<<16 | 1 (mod 65521).
func sixteenBitPNG(t *testing.T, w, h uint32) []byte {
	t.Helper()
	const segment = 1 << 20
	deflate := func(size int64, final bool) []byte {
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		_, _ = fw.Write(make([]byte, size))
		if final {
			_ = fw.Close()
		} else {
			_ = fw.Flush()
		}
		return buf.Bytes()
	}
	n := int64(h) * (1 + 8*int64(w))
	idat, seg := []byte{0x78, 0x9c}, deflate(segment, false)
	for range n / segment {
		idat = append(idat, seg...)
	}
	idat = append(idat, deflate(n%segment, true)...)
	idat = binary.BigEndian.AppendUint32(idat, uint32(n%65521)<<16|1)

	chunk := func(out []byte, typ string, data []byte) []byte {
		out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
		start := len(out)
		out = append(append(out, typ...), data...)
		return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[start:]))
	}
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	out := chunk([]byte("\x89PNG\r\n\x1a\n"), "IHDR", append(ihdr, 16, 6, 0, 0, 0))
	out = chunk(out, "IDAT", idat)
	return chunk(out, "IEND", nil)
}
