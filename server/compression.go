package server

import (
	"io"

	"connectrpc.com/connect"
	"github.com/klauspost/compress/gzip"
)

// newFastGzipWriter compresses answers at gzip's fastest level (1), for
// Connect, gRPC and REST alike, instead of the libraries' default (6):
// nginx's default (gzip_comp_level 1) for the same reason. On a feed page
// of 20 posts the default level was 16 % of the server's CPU; level 1
// took 0.1-0.2 ms less CPU per page for an answer of 2,745 bytes instead
// of 2,381 (12 KB of JSON; docs/performance.md).
//
// The gzip of github.com/klauspost/compress (the standard library's API,
// with faster encoders) instead of compress/gzip: on that 12.7 KB page,
// 25 us instead of 43 us per answer at level 1, and 2,743 bytes instead of
// 2,879. Most of what is left is fixed per answer (the block's Huffman
// codes): v1.20.5 builds them in half the time of v1.20.1, 11 us instead of
// 21-22 for a 7 KB protobuf page and 12-15 instead of 17-20 for its JSON
// (BenchmarkGzip_FeedPage).
func newFastGzipWriter() connect.Compressor {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // the level is valid, so no error
	return w
}

// newGzipReader is the gzip decompressor, from the same package;
// WithCompression takes both.
func newGzipReader() connect.Decompressor { return &gzip.Reader{} }
