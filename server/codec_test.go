package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
)

// flockMessages are the message types of package flock.v1, nested included.
func flockMessages(t testing.TB) []protoreflect.MessageType {
	var out []protoreflect.MessageType
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			md := ms.Get(i)
			if md.IsMapEntry() {
				continue
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
			if err != nil {
				t.Fatalf("%s: %v", md.FullName(), err)
			}
			out = append(out, mt)
			walk(md.Messages())
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("flock.v1", func(fd protoreflect.FileDescriptor) bool {
		walk(fd.Messages())
		return true
	})
	if len(out) < 50 {
		t.Fatalf("found %d flock.v1 messages: is the package linked in?", len(out))
	}
	return out
}

// Strings that JSON must escape or that an encoder might get wrong.
var awkwardStrings = []string{
	"", "plain", "quote \" and backslash \\", "controls \x00\x01\x1f\x7f", "\b\f\n\r\t",
	"<script>&amp;</script>", "é, 日本語, 😀", "\u2028\u2029", "\ufffd is valid", "/slash/",
}

var awkwardDoubles = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 1.5, 123.456, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e300,
	math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1),
}

// fillMessage fills a message field's value: a Timestamp with a time of
// years 1-9999 (once in 50 outside them), any other message with fill.
func fillMessage(r *rand.Rand, m protoreflect.Message, depth int) {
	if m.Descriptor().FullName() != "google.protobuf.Timestamp" {
		if depth <= 3 {
			fill(r, m, depth)
		}
		return
	}
	ts := m.Interface().(*timestamppb.Timestamp)
	ts.Nanos = []int32{0, 1, 100, 1_000, 123_400, 1_000_000, 5_000_100, 120_000_000, 999_999_999, r.Int32N(1e9)}[r.IntN(10)]
	ts.Seconds = r.Int64N(253402300799+62135596800) - 62135596800
	if r.IntN(50) == 0 {
		ts.Seconds = []int64{-62135596801, 253402300800, math.MinInt64}[r.IntN(3)]
	}
}

// fill sets every field of m to a random value, leaving some unset.
func fill(r *rand.Rand, m protoreflect.Message, depth int) {
	md := m.Descriptor()
	oneofs := md.Oneofs()
	chosen := map[protoreflect.FullName]protoreflect.FieldDescriptor{}
	for i := range oneofs.Len() {
		o := oneofs.Get(i)
		if r.IntN(4) > 0 {
			chosen[o.FullName()] = o.Fields().Get(r.IntN(o.Fields().Len()))
		}
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if o := fd.ContainingOneof(); o != nil {
			if chosen[o.FullName()] != fd {
				continue
			}
		} else if r.IntN(5) == 0 {
			continue // unset: a zero scalar, an empty list, no message
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range r.IntN(3) {
				mp.Set(randomValue(r, fd.MapKey(), m, depth).MapKey(), randomValue(r, fd.MapValue(), m, depth))
			}
		case fd.IsList():
			list := m.Mutable(fd).List()
			for range r.IntN(4) {
				if fd.Kind() == protoreflect.MessageKind {
					v := list.NewElement()
					fillMessage(r, v.Message(), depth+1)
					list.Append(v)
				} else {
					list.Append(randomValue(r, fd, m, depth))
				}
			}
		default:
			m.Set(fd, randomValue(r, fd, m, depth))
		}
	}
}

func randomValue(r *rand.Rand, fd protoreflect.FieldDescriptor, m protoreflect.Message, depth int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32([]int32{0, 1, -1, math.MaxInt32, math.MinInt32, r.Int32()}[r.IntN(6)])
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32([]uint32{0, 1, math.MaxUint32, r.Uint32()}[r.IntN(4)])
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64([]int64{0, 1, -1, math.MaxInt64, math.MinInt64, r.Int64(), 1 << 53}[r.IntN(7)])
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64([]uint64{0, 1, math.MaxUint64, r.Uint64()}[r.IntN(4)])
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(awkwardDoubles[r.IntN(len(awkwardDoubles))]))
	case protoreflect.DoubleKind:
		if r.IntN(3) == 0 {
			return protoreflect.ValueOfFloat64(r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20)))
		}
		return protoreflect.ValueOfFloat64(awkwardDoubles[r.IntN(len(awkwardDoubles))])
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(awkwardStrings[r.IntN(len(awkwardStrings))])
	case protoreflect.BytesKind:
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		if r.IntN(6) == 0 {
			return protoreflect.ValueOfEnum(99) // a number the enum does not declare
		}
		return protoreflect.ValueOfEnum(values.Get(r.IntN(values.Len())).Number())
	case protoreflect.MessageKind:
		v := m.NewField(fd)
		fillMessage(r, v.Message(), depth+1)
		return v
	}
	panic(fmt.Sprintf("no random value for %v", fd.Kind()))
}

// sameJSON reports whether a and b hold the same JSON value, numbers
// compared as written.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	parse := func(data []byte) any {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, data)
		}
		return v
	}
	return reflect.DeepEqual(parse(a), parse(b))
}

// Every flock.v1 message the generator covers is written as protojson
// writes it, on randomly filled messages (awkward strings, numbers, enums
// the enum does not declare, timestamps, unset fields and oneofs). A field
// the generated code forgets, or a value it writes otherwise, fails here.
func TestJSONCodec_GeneratedEncoderWritesWhatProtojsonWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 34))
	covered, compared, refused := 0, 0, 0
	for _, mt := range flockMessages(t) {
		name := mt.Descriptor().FullName()
		if _, ok := mt.New().Interface().(protoJSONAppender); !ok {
			continue
		}
		covered++
		for i := range 300 {
			m := mt.New()
			fill(r, m, 0)
			want, wantErr := jsonMarshal.Marshal(m.Interface())
			got, gotErr := marshalJSON(m.Interface())
			if (wantErr != nil) != (gotErr != nil) {
				t.Fatalf("%s #%d: protojson error %v, generated error %v", name, i, wantErr, gotErr)
			}
			if wantErr != nil {
				refused++
				continue
			}
			compared++
			if !sameJSON(t, want, got) {
				t.Fatalf("%s #%d differs from protojson:\nprotojson: %s\ngenerated: %s", name, i, want, got)
			}
		}
	}
	if covered < 80 {
		t.Fatalf("only %d messages have a generated encoder", covered)
	}
	// Most fills must be written, not refused (invalid times are 1 in 50).
	t.Logf("%d messages, %d fills compared, %d refused by both", covered, compared, refused)
	if compared < 20*refused {
		t.Fatalf("%d fills compared and %d refused: the fills test the errors more than the output", compared, refused)
	}
}

// Every message a handler answers with has a generated encoder: a response
// that falls back to protojson (a map, a FieldMask in it) would lose the
// speed silently. UpdateMeRequest and UpdateGroupRequest hold a FieldMask
// and are only ever read.
func TestJSONCodec_EveryResponseHasAGeneratedEncoder(t *testing.T) {
	for _, mt := range flockMessages(t) {
		name := string(mt.Descriptor().FullName())
		_, ok := mt.New().Interface().(protoJSONAppender)
		if !ok && (strings.HasSuffix(name, "Response") || !strings.HasSuffix(name, "Request")) {
			t.Errorf("%s has no AppendProtoJSON: run make generate, or teach tools/protoc-gen-flock-json its fields", name)
		}
	}
}

// The errors protojson gives are given too: a string that is not UTF-8
// and a timestamp outside years 1-9999 are refused, not written.
func TestJSONCodec_RefusesWhatProtojsonRefuses(t *testing.T) {
	for name, m := range map[string]proto.Message{
		"invalid UTF-8":         &flockv1.User{Username: "ab\xffcd"},
		"invalid UTF-8 in list": &flockv1.User{Interests: []string{"ok", "\xc3"}},
		"timestamp before 0001": &flockv1.Post{CreatedAt: &timestamppb.Timestamp{Seconds: -62135596801}},
		"timestamp after 9999":  &flockv1.Post{CreatedAt: &timestamppb.Timestamp{Seconds: 253402300800}},
		"nanos out of range":    &flockv1.Post{CreatedAt: &timestamppb.Timestamp{Nanos: 1e9}},
		"negative nanos":        &flockv1.Post{CreatedAt: &timestamppb.Timestamp{Nanos: -1}},
		"nested: author's name": &flockv1.Post{Author: &flockv1.User{FullName: "\xed\xa0\x80"}},
	} {
		if _, err := jsonMarshal.Marshal(m); err == nil {
			t.Fatalf("%s: protojson accepts it; the case tests nothing", name)
		}
		if b, err := marshalJSON(m); err == nil {
			t.Errorf("%s: written as %s", name, b)
		}
	}
}

// benchFeedPage is a feed page of 20 posts by 13 authors, shaped like the
// load tool's (about 7 KB of protobuf, 15 KB of JSON).
func benchFeedPage() *flockv1.ListFeedResponse {
	page := &flockv1.ListFeedResponse{NextPageToken: "eyJjIjoiMjAyNi0xMi0wNlQyMDowMDowMFoiLCJpIjoiMDFKIn0"}
	for i := range 20 {
		page.Posts = append(page.Posts, &flockv1.Post{
			Id:      fmt.Sprintf("01JEXAMPLEPOST%012d", i*7919),
			Content: fmt.Sprintf("A post %d of a typical length, with a #hashtag%d and a link: https://example.com/some/path?q=%d — and some more words to reach 160 characters or so.", i, i%5, i*31),
			Author: &flockv1.User{
				Id: fmt.Sprintf("01JEXAMPLEUSER%012d", i%13), Username: fmt.Sprintf("someone%d", i%13), FullName: "Some One", Bio: "Writes things.",
				AvatarUrl: "/media/avatars/01JEXAMPLE.webp", FollowersCount: 1234, FollowingCount: 321, PostsCount: 99,
				CreatedAt: timestamppb.Now(), Interests: []string{"go", "music"},
			},
			LikesCount: 12, CommentsCount: 3, LikedByMe: i%2 == 0, Hashtags: []string{"hashtag"},
			CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now(),
		})
	}
	return page
}

// A feed page as the codec writes it: generated code against protojson.
func BenchmarkJSONCodec_FeedPage(b *testing.B) {
	page := benchFeedPage()
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jsonMarshal.Marshal(page); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 16<<10)
		for b.Loop() {
			var err error
			if buf, err = appendJSON(buf[:0], page); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGzip_FeedPage is the compressor every answer of a KiB or more
// goes through (compression.go), on a feed page in both encodings. Most of
// its time is fixed per answer (building the block's Huffman codes), not
// per byte: klauspost/compress v1.20.5 halved it against v1.20.1.
func BenchmarkGzip_FeedPage(b *testing.B) {
	page := benchFeedPage()
	pb, err := proto.Marshal(page)
	if err != nil {
		b.Fatal(err)
	}
	js, err := appendJSON(nil, page)
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range []struct {
		name string
		data []byte
	}{{"protobuf", pb}, {"json", js}} {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			w := newFastGzipWriter()
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				w.Reset(&out)
				if _, err := w.Write(in.data); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(in.data)), "bytes-in")
			b.ReportMetric(float64(out.Len()), "bytes-out")
		})
	}
}
