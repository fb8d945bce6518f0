// Command protoc-gen-flock-json generates, for each message of a proto
// package, an AppendProtoJSON method that writes the message as Flock's
// JSON codec does with protojson (MarshalOptions{EmitDefaultValues: true}),
// without protojson's reflection.
//
// Why by hand: protojson walks every message through protoreflect, sorting
// its fields on each call; that was a quarter of the CPU of a REST feed page
// (docs/performance.md, item 34). No well-kept library generates protojson's
// output: the ones that exist wrap protojson (mfridman/protoc-gen-go-json) or
// call themselves experimental (sudorandom/protojsonx).
//
// The generated code covers the kinds Flock's responses use: every scalar,
// enums, proto3 optional fields, oneofs, repeated fields, messages of the
// same package and google.protobuf.Timestamp. A message with anything else
// (a map, another well-known type such as FieldMask, a message of another
// package), or that contains such a message, gets no method, and the codec
// falls back to protojson for it. server/codec_test.go holds every generated
// method to protojson's output on randomly filled messages.
package main

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/pluginpb"
)

const timestampName protoreflect.FullName = "google.protobuf.Timestamp"

func main() {
	protogen.Options{}.Run(func(gen *protogen.Plugin) error {
		gen.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL)
		var files []*protogen.File
		for _, f := range gen.Files {
			if f.Generate {
				files = append(files, f)
			}
		}
		supported := supportedMessages(files)
		enums := usedEnums(supported)
		helpersDone := map[protogen.GoImportPath]bool{}
		for _, f := range files {
			if !hasSupported(f, supported, enums) {
				continue
			}
			if !helpersDone[f.GoImportPath] {
				helpersDone[f.GoImportPath] = true
				genHelpers(gen, f)
			}
			genFile(gen, f, supported, enums)
		}
		return nil
	})
}

// hasSupported reports whether the file declares a message or an enum
// that gets a method.
func hasSupported(f *protogen.File, supported map[protoreflect.FullName]*protogen.Message, enums map[protoreflect.FullName]bool) bool {
	for _, m := range allMessages(f.Messages) {
		if _, ok := supported[m.Desc.FullName()]; ok {
			return true
		}
	}
	for _, e := range allEnums(f) {
		if enums[e.Desc.FullName()] {
			return true
		}
	}
	return false
}

// usedEnums are the enums of the supported messages' fields: each gets one
// method, which every field of it calls.
func usedEnums(supported map[protoreflect.FullName]*protogen.Message) map[protoreflect.FullName]bool {
	used := map[protoreflect.FullName]bool{}
	for _, m := range supported {
		for _, fld := range m.Fields {
			if fld.Enum != nil {
				used[fld.Enum.Desc.FullName()] = true
			}
		}
	}
	return used
}

// allEnums lists a file's enums, those nested in messages included.
func allEnums(f *protogen.File) []*protogen.Enum {
	out := append([]*protogen.Enum(nil), f.Enums...)
	for _, m := range allMessages(f.Messages) {
		out = append(out, m.Enums...)
	}
	return out
}

// allMessages lists a file's messages, nested ones included, in order.
func allMessages(ms []*protogen.Message) []*protogen.Message {
	var out []*protogen.Message
	for _, m := range ms {
		if m.Desc.IsMapEntry() {
			continue
		}
		out = append(out, m)
		out = append(out, allMessages(m.Messages)...)
	}
	return out
}

// supportedMessages are the messages of the files whose every field the
// generator can write, transitively: it starts from all and drops, until
// nothing changes, those with an unsupported field or a field of a dropped
// message. A message field must be of the same Go package (the method it
// calls is unexported) or a Timestamp.
func supportedMessages(files []*protogen.File) map[protoreflect.FullName]*protogen.Message {
	ok := map[protoreflect.FullName]*protogen.Message{}
	for _, f := range files {
		for _, m := range allMessages(f.Messages) {
			ok[m.Desc.FullName()] = m
		}
	}
	for changed := true; changed; {
		changed = false
		for name, m := range ok {
			for _, fld := range m.Fields {
				if !fieldSupported(m, fld, ok) {
					delete(ok, name)
					changed = true
					break
				}
			}
		}
	}
	return ok
}

func fieldSupported(m *protogen.Message, fld *protogen.Field, ok map[protoreflect.FullName]*protogen.Message) bool {
	d := fld.Desc
	if d.IsMap() || d.IsExtension() {
		return false
	}
	switch d.Kind() {
	case protoreflect.GroupKind:
		return false
	case protoreflect.EnumKind:
		// Its method is unexported: the enum must be of the same package.
		return fld.Enum.GoIdent.GoImportPath == m.GoIdent.GoImportPath
	case protoreflect.MessageKind:
		name := d.Message().FullName()
		if name == timestampName {
			return true
		}
		target, found := ok[name]
		return found && target.GoIdent.GoImportPath == m.GoIdent.GoImportPath
	}
	return true
}

func genFile(gen *protogen.Plugin, f *protogen.File, supported map[protoreflect.FullName]*protogen.Message, enums map[protoreflect.FullName]bool) {
	g := gen.NewGeneratedFile(f.GeneratedFilenamePrefix+".pb.json.go", f.GoImportPath)
	g.P("// Code generated by protoc-gen-flock-json. DO NOT EDIT.")
	g.P("// source: ", f.Desc.Path())
	g.P()
	g.P("package ", f.GoPackageName)
	g.P()
	for _, e := range allEnums(f) {
		if enums[e.Desc.FullName()] {
			genEnum(g, e)
		}
	}
	for _, m := range allMessages(f.Messages) {
		if _, ok := supported[m.Desc.FullName()]; ok {
			genMessage(g, m)
		}
	}
}

func genMessage(g *protogen.GeneratedFile, m *protogen.Message) {
	name := m.GoIdent.GoName
	g.P("// AppendProtoJSON appends x to b as protojson.MarshalOptions{EmitDefaultValues: true}")
	g.P("// writes it, up to white space: fields in declaration order, default values")
	g.P("// included, unset messages, optional fields and oneofs left out. Its error is")
	g.P("// protojson's: a string that is not UTF-8, or a Timestamp out of range.")
	g.P("func (x *", name, ") AppendProtoJSON(b []byte) ([]byte, error) {")
	g.P("e := protoJSONEncoder{b: b}")
	g.P("x.appendProtoJSON(&e)")
	g.P("return e.b, e.err")
	g.P("}")
	g.P()
	g.P("func (x *", name, ") appendProtoJSON(e *protoJSONEncoder) {")
	g.P("if x == nil {")
	g.P(`e.b = append(e.b, "{}"...)`)
	g.P("return")
	g.P("}")
	g.P("e.b = append(e.b, '{')")
	done := map[*protogen.Oneof]bool{}
	for _, fld := range m.Fields {
		if o := fld.Oneof; o != nil && !o.Desc.IsSynthetic() {
			if !done[o] {
				done[o] = true
				genOneof(g, o)
			}
			continue
		}
		genField(g, fld)
	}
	g.P("e.b = append(e.b, '}')")
	g.P("}")
	g.P()
}

// key is the code writing a field's name and colon, after a comma unless
// the field is the object's first.
func key(fld *protogen.Field) string {
	return "e.key(`" + strconv.Quote(fld.Desc.JSONName()) + ":`)"
}

func genOneof(g *protogen.GeneratedFile, o *protogen.Oneof) {
	g.P("switch v := x.", o.GoName, ".(type) {")
	for _, fld := range o.Fields {
		g.P("case *", fld.GoIdent, ":")
		value := "v." + fld.GoName
		if fld.Desc.Kind() == protoreflect.MessageKind {
			g.P("if ", value, " != nil {")
			g.P(key(fld))
			genValue(g, fld, value)
			g.P("}")
			continue
		}
		g.P(key(fld))
		genValue(g, fld, value)
	}
	g.P("}")
}

func genField(g *protogen.GeneratedFile, fld *protogen.Field) {
	value := "x." + fld.GoName
	d := fld.Desc
	switch {
	case d.IsList():
		g.P(key(fld))
		g.P("e.b = append(e.b, '[')")
		g.P("for i, v := range ", value, " {")
		g.P("if i > 0 {")
		g.P("e.b = append(e.b, ',')")
		g.P("}")
		genValue(g, fld, "v")
		g.P("}")
		g.P("e.b = append(e.b, ']')")
	case d.Kind() == protoreflect.MessageKind:
		g.P("if ", value, " != nil {")
		g.P(key(fld))
		genValue(g, fld, value)
		g.P("}")
	case d.HasPresence():
		// A proto3 optional scalar: a pointer, or a nil slice for bytes.
		g.P("if ", value, " != nil {")
		g.P(key(fld))
		if d.Kind() == protoreflect.BytesKind {
			genValue(g, fld, value)
		} else {
			genValue(g, fld, "*"+value)
		}
		g.P("}")
	default:
		g.P(key(fld))
		genValue(g, fld, value)
	}
}

// genValue writes one value of the field's kind (an element, for a list).
func genValue(g *protogen.GeneratedFile, fld *protogen.Field, v string) {
	d := fld.Desc
	switch d.Kind() {
	case protoreflect.BoolKind:
		g.P("e.b = ", g.QualifiedGoIdent(strconvIdent("AppendBool")), "(e.b, ", v, ")")
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		g.P("e.b = ", g.QualifiedGoIdent(strconvIdent("AppendInt")), "(e.b, int64(", v, "), 10)")
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		g.P("e.b = ", g.QualifiedGoIdent(strconvIdent("AppendUint")), "(e.b, uint64(", v, "), 10)")
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		// protojson quotes 64-bit integers: JavaScript numbers hold 53 bits.
		g.P("e.b = append(e.b, '\"')")
		g.P("e.b = ", g.QualifiedGoIdent(strconvIdent("AppendInt")), "(e.b, ", v, ", 10)")
		g.P("e.b = append(e.b, '\"')")
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		g.P("e.b = append(e.b, '\"')")
		g.P("e.b = ", g.QualifiedGoIdent(strconvIdent("AppendUint")), "(e.b, ", v, ", 10)")
		g.P("e.b = append(e.b, '\"')")
	case protoreflect.FloatKind:
		g.P("e.float(float64(", v, "), 32)")
	case protoreflect.DoubleKind:
		g.P("e.float(", v, ", 64)")
	case protoreflect.StringKind:
		g.P("e.string(", v, ")")
	case protoreflect.BytesKind:
		g.P("e.bytes(", v, ")")
	case protoreflect.EnumKind:
		if strings.HasPrefix(v, "*") {
			v = "(" + v + ")" // an optional enum's pointer
		}
		g.P(v, ".appendProtoJSON(e)")
	case protoreflect.MessageKind:
		if d.Message().FullName() == timestampName {
			g.P("e.timestamp(", v, ".GetSeconds(), ", v, ".GetNanos())")
			return
		}
		g.P(v, ".appendProtoJSON(e)")
	default:
		panic(fmt.Sprintf("protoc-gen-flock-json: kind %v of %s passed supportedMessages", d.Kind(), d.FullName()))
	}
}

// genEnum writes the enum's method: a value's name, or its number when the
// value is not one the enum declares (as protojson does).
func genEnum(g *protogen.GeneratedFile, e *protogen.Enum) {
	g.P("func (v ", e.GoIdent.GoName, ") appendProtoJSON(e *protoJSONEncoder) {")
	g.P("switch v {")
	seen := map[protoreflect.EnumNumber]bool{}
	values := append([]*protogen.EnumValue(nil), e.Values...)
	sort.SliceStable(values, func(i, j int) bool { return values[i].Desc.Number() < values[j].Desc.Number() })
	for _, ev := range values {
		n := ev.Desc.Number()
		if seen[n] {
			continue // an alias: protojson writes the first name
		}
		seen[n] = true
		g.P("case ", strconv.Itoa(int(n)), ":")
		g.P("e.b = append(e.b, `", strconv.Quote(string(ev.Desc.Name())), "`...)")
	}
	g.P("default:")
	g.P("e.b = ", g.QualifiedGoIdent(strconvIdent("AppendInt")), "(e.b, int64(v), 10)")
	g.P("}")
	g.P("}")
	g.P()
}

func strconvIdent(name string) protogen.GoIdent {
	return protogen.GoIdent{GoName: name, GoImportPath: "strconv"}
}

// genHelpers writes the encoder the methods share, once per Go package.
func genHelpers(gen *protogen.Plugin, f *protogen.File) {
	g := gen.NewGeneratedFile(path.Join(path.Dir(f.GeneratedFilenamePrefix), "protojson_encoder.pb.json.go"), f.GoImportPath)
	g.P("// Code generated by protoc-gen-flock-json. DO NOT EDIT.")
	g.P()
	g.P("package ", f.GoPackageName)
	g.P()
	g.P("import (")
	for _, imp := range []string{"encoding/base64", "errors", "math", "strconv", "time", "unicode/utf8"} {
		g.P(strconv.Quote(imp))
	}
	g.P(")")
	g.P(helpers)
}

// helpers is the shared encoder. Its output follows the proto3 JSON mapping
// as protojson writes it; the escapes and number forms are the JSON
// standard's, so any JSON reader reads the same values.
const helpers = `
// protoJSONEncoder collects a message's JSON and the first error.
type protoJSONEncoder struct {
	b   []byte
	err error
}

// key writes a field's quoted name and colon, after a comma unless the
// field is the first of its object (only an object's opening brace ends in
// '{': every value ends in a quote, a digit, a letter, '}' or ']').
func (e *protoJSONEncoder) key(k string) {
	if e.b[len(e.b)-1] != '{' {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, k...)
}

var errProtoJSONInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// string writes s quoted, escaping what JSON requires: the quote, the
// backslash and control characters. A string that is not UTF-8 is an error,
// as in protojson (proto3 strings are UTF-8).
func (e *protoJSONEncoder) string(s string) {
	e.b = append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x80 {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				if e.err == nil {
					e.err = errProtoJSONInvalidUTF8
				}
				e.b = append(e.b, '"')
				return
			}
			i += n
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		e.b = append(e.b, s[start:i]...)
		switch c {
		case '"', '\\':
			e.b = append(e.b, '\\', c)
		case '\b':
			e.b = append(e.b, '\\', 'b')
		case '\f':
			e.b = append(e.b, '\\', 'f')
		case '\n':
			e.b = append(e.b, '\\', 'n')
		case '\r':
			e.b = append(e.b, '\\', 'r')
		case '\t':
			e.b = append(e.b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			e.b = append(e.b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	e.b = append(e.b, s[start:]...)
	e.b = append(e.b, '"')
}

// bytes writes standard base64 with padding, quoted.
func (e *protoJSONEncoder) bytes(v []byte) {
	e.b = append(e.b, '"')
	e.b = base64.StdEncoding.AppendEncode(e.b, v)
	e.b = append(e.b, '"')
}

// float writes a number as JavaScript prints it, and the three values JSON
// has no number for as the strings protojson uses.
func (e *protoJSONEncoder) float(f float64, bits int) {
	switch {
	case math.IsNaN(f):
		e.b = append(e.b, "\"NaN\""...)
		return
	case math.IsInf(f, 1):
		e.b = append(e.b, "\"Infinity\""...)
		return
	case math.IsInf(f, -1):
		e.b = append(e.b, "\"-Infinity\""...)
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 -> 1e-7, as JavaScript writes it.
		n := len(e.b)
		if n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

// The range of a google.protobuf.Timestamp: years 1 to 9999.
const (
	protoJSONMinSeconds = -62135596800
	protoJSONMaxSeconds = 253402300799
)

var errProtoJSONTimestamp = errors.New("google.protobuf.Timestamp: seconds or nanos out of range")

// timestamp writes RFC 3339 in UTC with 0, 3, 6 or 9 digits of fraction.
func (e *protoJSONEncoder) timestamp(seconds int64, nanos int32) {
	if seconds < protoJSONMinSeconds || seconds > protoJSONMaxSeconds || nanos < 0 || nanos >= 1e9 {
		if e.err == nil {
			e.err = errProtoJSONTimestamp
		}
		e.b = append(e.b, "null"...)
		return
	}
	e.b = append(e.b, '"')
	e.b = time.Unix(seconds, 0).UTC().AppendFormat(e.b, "2006-01-02T15:04:05")
	if nanos != 0 {
		digits, n := 9, nanos
		for digits > 3 && n%1000 == 0 {
			digits -= 3
			n /= 1000
		}
		e.b = append(e.b, '.')
		var frac [9]byte
		for i := digits - 1; i >= 0; i-- {
			frac[i] = byte('0' + n%10)
			n /= 10
		}
		e.b = append(e.b, frac[:digits]...)
	}
	e.b = append(e.b, 'Z', '"')
}
`
