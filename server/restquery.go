package server

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/flock-social/flock"
)

// restQueries checks the query parameters of the REST API's GET routes
// against the fields they set, before vanguard parses them: vanguard's own
// refusals quoted its parser (`invalid parameter "state": unknown enum:
// active`, `invalid character 'm' looking for beginning of value`), named
// no allowed value and carried no details. An enum parameter must name a
// value of its enum (or give a number, which the field check then judges,
// as in a body), a bool parameter true or false, an integer one a whole
// number in its range. Parameters that are no
// field are ignored, as vanguard is told to (routes.go).
//
// The routes are found with ServeMuxes of the GET templates of the
// services' google.api.http rules: their {field} segments are ServeMux
// wildcards, and ServeMux picks the most specific pattern, as vanguard
// does (/api/users/search before /api/users/{user_id}). A pattern that
// ServeMux finds ambiguous beside another (/api/posts/videos/{video_id}
// and /api/posts/{post_id}/comments) goes to a mux of its own; a path
// that several routes match is refused only when none would take its
// parameters.
type restQueries struct {
	muxes  []*http.ServeMux
	inputs map[string]protoreflect.MessageDescriptor // by pattern
}

func newRESTQueries(serviceNames ...string) (*restQueries, error) {
	q := &restQueries{inputs: map[string]protoreflect.MessageDescriptor{}}
	for _, name := range serviceNames {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return nil, fmt.Errorf("rest queries: %w", err)
		}
		methods := d.(protoreflect.ServiceDescriptor).Methods()
		for i := range methods.Len() {
			m := methods.Get(i)
			rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
			if rule.GetGet() == "" {
				continue
			}
			pattern := "GET " + rule.GetGet()
			q.add(pattern)
			q.inputs[pattern] = m.Input()
		}
	}
	return q, nil
}

// add registers pattern on the first mux where it conflicts with no other.
func (q *restQueries) add(pattern string) {
	for _, mux := range q.muxes {
		if registered(mux, pattern) {
			return
		}
	}
	mux := http.NewServeMux()
	mux.Handle(pattern, http.NotFoundHandler())
	q.muxes = append(q.muxes, mux)
}

// registered adds pattern to mux, or reports false when mux refuses it
// (ServeMux panics on a conflict).
func registered(mux *http.ServeMux, pattern string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return true
}

// check returns the refusal of r's first parameter that its field cannot
// take, or nil; the parameters it takes it writes in the one spelling
// vanguard parses (JSON's): a bool true or false (from any of
// strconv.ParseBool's), a number without leading zeros or sign, and a
// page size of more than 100 as 100, which every list would make it
// (past int32 vanguard refused it).
func (q *restQueries) check(r *http.Request) error {
	if r.Method != http.MethodGet || r.URL.RawQuery == "" {
		return nil
	}
	// The route without its trailing slash, as withoutTrailingSlash
	// gives it to vanguard.
	u := *r.URL
	u.Path = strings.TrimSuffix(u.Path, "/")
	probe := &http.Request{Method: r.Method, URL: &u}
	var refusal error
	for _, mux := range q.muxes {
		if _, pattern := mux.Handler(probe); q.inputs[pattern] != nil {
			query := r.URL.Query()
			var changed bool
			if changed, refusal = checkQuery(query, q.inputs[pattern]); refusal == nil {
				if changed {
					r.URL.RawQuery = query.Encode()
				}
				return nil
			}
		}
	}
	return refusal
}

// checkQuery returns the refusal of the first parameter of query (by name,
// so that the same request always reads the same) that its field in md
// cannot take, or rewrites the values in vanguard's spelling and reports
// whether any changed. A field given twice, under one name or both of its
// names, is refused: vanguard took the last value without a word.
func checkQuery(query url.Values, md protoreflect.MessageDescriptor) (changed bool, err error) {
	given := map[protoreflect.FieldNumber]string{}
	for _, key := range slices.Sorted(maps.Keys(query)) {
		values := query[key]
		fd := md.Fields().ByName(protoreflect.Name(key))
		if fd == nil {
			fd = md.Fields().ByJSONName(key)
		}
		if fd == nil {
			continue
		}
		if !fd.IsList() {
			if other, twice := given[fd.Number()]; twice || len(values) > 1 {
				names := key
				if twice {
					names = other + " and " + key
				}
				return false, flock.FieldErrorf(string(fd.Name()), "query parameter %s is given more than once (%s); give it once", fd.Name(), names)
			}
			given[fd.Number()] = key
		}
		for i, v := range values {
			c, err := queryValue(fd, key, v)
			if err != nil {
				return false, err
			}
			if c != v {
				values[i], changed = c, true
			}
		}
	}
	return changed, nil
}

// maxPageSize is the contract's largest page; a larger one is clamped.
const maxPageSize = 100

// queryValue returns v, a value of parameter key for field fd, as vanguard
// parses it, or the refusal of a value fd cannot take.
func queryValue(fd protoreflect.FieldDescriptor, key, v string) (string, error) {
	field := string(fd.Name())
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if fd.Enum().Values().ByName(protoreflect.Name(v)) != nil {
			return v, nil
		}
		if n, err := strconv.ParseInt(v, 10, 32); err == nil && fd.Enum().Values().ByNumber(protoreflect.EnumNumber(n)) != nil {
			return strconv.FormatInt(n, 10), nil
		}
		return "", flock.FieldErrorf(field, "query parameter %s: %q is not a %s; use one of %s", key, v, fd.Enum().Name(), allowedEnumNames(fd))
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", flock.FieldErrorf(field, "query parameter %s must be true or false, not %q", key, v)
		}
		return strconv.FormatBool(b), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if field == "page_size" {
			// Every list's: any number of digits, clamped.
			if v == "" || strings.Trim(v, "0123456789") != "" {
				return "", flock.FieldErrorf(field, "query parameter %s must be a whole number of items, 1 to %d (larger is clamped to %d; 0 or none means 20), not %q", key, maxPageSize, maxPageSize, v)
			}
			n, err := strconv.Atoi(v)
			if err != nil || n > maxPageSize {
				n = maxPageSize
			}
			return strconv.Itoa(n), nil
		}
		bits := 64
		if fd.Kind() == protoreflect.Int32Kind || fd.Kind() == protoreflect.Sint32Kind || fd.Kind() == protoreflect.Sfixed32Kind {
			bits = 32
		}
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			return "", flock.FieldErrorf(field, "query parameter %s must be a whole number, not %q", key, v)
		}
		return strconv.FormatInt(n, 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		bits := 64
		if fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Fixed32Kind {
			bits = 32
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return "", flock.FieldErrorf(field, "query parameter %s must be a whole number, 0 or more, not %q", key, v)
		}
		return strconv.FormatUint(n, 10), nil
	}
	return v, nil
}
