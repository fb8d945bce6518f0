// Package fieldcheck is the one check every request message passes
// (security.md property 22), whatever transport brought it:
//
//   - an enum field must hold a value its enum defines, whether the client
//     wrote it by name (JSON) or by number (any encoding): protojson reads an
//     unknown name as the default when unknown fields are discarded, so a
//     misspelt "visibility" would publish a post publicly;
//   - a string must be valid UTF-8 and hold no NUL byte (databases refuse
//     both, and they are never meaningful text);
//   - a string made only of blank characters (white space and invisible
//     format characters such as U+200B, U+2060, U+FEFF) counts as empty;
//   - a string is taken in Unicode normalization form C (passwords
//     excepted), so that text is stored and searched in one spelling.
//
// It knows nothing of Flock's messages: it walks their descriptors, so a new
// field or enum is covered without touching it.
package fieldcheck

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Error is a refused field: Field is its path in the proto's field names
// (`members[2].role`, `new_password`), as protovalidate's violations and
// the services' own refusals name fields, Reason says what is wrong and how to fix it.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// JSONEnums checks that every enum value the JSON object data writes by name
// is a name of the field's enum. Unknown fields are skipped (they are
// ignored on purpose), and so is anything that is not well-formed JSON:
// the JSON decoder reports that better. Numbers are left to Message.
func JSONEnums(data []byte, md protoreflect.MessageDescriptor) error {
	if !hasEnums(md) {
		return nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	return jsonObject(obj, md, "")
}

func jsonObject(obj map[string]any, md protoreflect.MessageDescriptor, path string) error {
	if isWellKnown(md) {
		return nil
	}
	fields := md.Fields()
	for key, val := range obj {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByTextName(key)
		}
		if fd == nil || val == nil {
			continue
		}
		p := join(path, string(fd.Name()))
		switch {
		case fd.IsMap():
			m, ok := val.(map[string]any)
			if !ok {
				continue
			}
			for k, elem := range m {
				if err := jsonValue(fd.MapValue(), elem, p+"["+strconv.Quote(k)+"]"); err != nil {
					return err
				}
			}
		case fd.IsList():
			list, ok := val.([]any)
			if !ok {
				continue
			}
			for i, elem := range list {
				if err := jsonValue(fd, elem, p+"["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
		default:
			if err := jsonValue(fd, val, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func jsonValue(fd protoreflect.FieldDescriptor, val any, path string) error {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		name, ok := val.(string)
		ed := fd.Enum()
		if !ok || ed.FullName() == "google.protobuf.NullValue" {
			return nil
		}
		if ed.Values().ByName(protoreflect.Name(name)) == nil {
			return &Error{Field: path, Reason: fmt.Sprintf("%q is not a %s; use one of %s", name, ed.Name(), Allowed(ed))}
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if obj, ok := val.(map[string]any); ok {
			return jsonObject(obj, fd.Message(), path)
		}
	}
	return nil
}

// Message checks m and every message inside it: enum numbers must be
// defined, strings valid UTF-8 without NUL; strings made only of blank
// characters are set to "" (except passwords, where every character
// counts), so that a "required" rule or the domain sees them as empty, and
// the others to their normalization form C (passwords again excepted).
func Message(m protoreflect.Message) error {
	return message(m, "")
}

func message(m protoreflect.Message, path string) error {
	if isWellKnown(m.Descriptor()) {
		return nil
	}
	var err error
	var later []func() // changes wait until Range is done, which forbids them
	defer func() {
		for _, f := range later {
			f()
		}
	}()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := join(path, string(fd.Name()))
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				kp := p + "[" + strconv.Quote(k.String()) + "]"
				if fd.MapKey().Kind() == protoreflect.StringKind {
					if err = checkString(k.String(), kp); err != nil {
						return false
					}
				}
				if nv, e := value(fd.MapValue(), mv, kp); e != nil {
					err = e
				} else if nv != nil {
					later = append(later, func() { v.Map().Set(k, *nv) })
				}
				return err == nil
			})
		case fd.IsList():
			list := v.List()
			for i := range list.Len() {
				nv, e := value(fd, list.Get(i), p+"["+strconv.Itoa(i)+"]")
				if e != nil {
					err = e
					break
				}
				if nv != nil {
					list.Set(i, *nv)
				}
			}
		default:
			nv, e := value(fd, v, p)
			if e != nil {
				err = e
			} else if nv != nil {
				later = append(later, func() { m.Set(fd, *nv) })
			}
		}
		return err == nil
	})
	return err
}

// value checks one value of fd and returns its replacement, if any.
func value(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) (*protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		s := v.String()
		if err := checkString(s, path); err != nil {
			return nil, err
		}
		if strings.Contains(strings.ToLower(string(fd.Name())), "password") {
			return nil, nil // taken exactly as sent: hashes of earlier passwords depend on it
		}
		if s != "" && Blank(s) {
			empty := protoreflect.ValueOfString("")
			return &empty, nil
		}
		// One spelling of each character: "ä" typed as a + U+0308
		// (decomposed, as macOS file names and some keyboards send it)
		// is stored and searched as the one code point U+00E4, so that a
		// search finds a name whichever way either was typed.
		if !norm.NFC.IsNormalString(s) {
			nfc := protoreflect.ValueOfString(norm.NFC.String(s))
			return &nfc, nil
		}
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.Values().ByNumber(v.Enum()) == nil {
			return nil, &Error{Field: path, Reason: fmt.Sprintf("%d is not a %s; use one of %s", v.Enum(), ed.Name(), Allowed(ed))}
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return nil, message(v.Message(), path)
	}
	return nil, nil
}

func checkString(s, path string) error {
	if !utf8.ValidString(s) {
		return &Error{Field: path, Reason: "is not valid UTF-8 text; send text encoded as UTF-8"}
	}
	if strings.IndexByte(s, 0) >= 0 {
		return &Error{Field: path, Reason: "contains a NUL character (\\u0000), which text may not contain; remove it"}
	}
	return nil
}

// Blank reports whether s holds nothing visible: only white space, format
// characters (Unicode category Cf: U+200B, U+2060, U+FEFF, bidi marks...)
// and the fillers that render as nothing (Hangul fillers, braille blank).
func Blank(s string) bool {
	for _, r := range s {
		if !invisible(r) {
			return false
		}
	}
	return true
}

func invisible(r rune) bool {
	switch r {
	case '\u115F', '\u1160', '\u3164', '\uFFA0', '\u2800', '\u180E', '\u034F':
		return true
	}
	return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zs, r)
}

// Allowed lists the values a client may send for ed: every value but the
// zero one, which means "unset".
func Allowed(ed protoreflect.EnumDescriptor) string {
	var names []string
	vals := ed.Values()
	for i := range vals.Len() {
		if v := vals.Get(i); v.Number() != 0 {
			names = append(names, string(v.Name()))
		}
	}
	return strings.Join(names, ", ")
}

// OneofFields lists the JSON names of a oneof's fields, for messages:
// "username or email".
func OneofFields(od protoreflect.OneofDescriptor) string {
	names := make([]string, od.Fields().Len())
	for i := range names {
		names[i] = od.Fields().Get(i).JSONName()
	}
	return strings.Join(names, " or ")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile() != nil && strings.HasPrefix(string(md.ParentFile().Package()), "google.protobuf")
}

var enumCache sync.Map // protoreflect.FullName -> bool

// hasEnums reports whether md has an enum field anywhere inside it.
func hasEnums(md protoreflect.MessageDescriptor) bool {
	if v, ok := enumCache.Load(md.FullName()); ok {
		return v.(bool)
	}
	has := scanEnums(md, map[protoreflect.FullName]bool{})
	enumCache.Store(md.FullName(), has)
	return has
}

func scanEnums(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] || isWellKnown(md) {
		return false
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		switch fd.Kind() {
		case protoreflect.EnumKind:
			return true
		case protoreflect.MessageKind, protoreflect.GroupKind:
			if scanEnums(fd.Message(), seen) {
				return true
			}
		}
	}
	return false
}
