package server

import (
	"fmt"
	"maps"
	"net/http"
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
// take, or nil.
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
			if refusal = checkQuery(r, q.inputs[pattern]); refusal == nil {
				return nil
			}
		}
	}
	return refusal
}

// checkQuery returns the refusal of r's first parameter (by name, so that
// the same request always reads the same) that its field in md cannot
// take, or nil.
func checkQuery(r *http.Request, md protoreflect.MessageDescriptor) error {
	query := r.URL.Query()
	for _, key := range slices.Sorted(maps.Keys(query)) {
		values := query[key]
		fd := md.Fields().ByName(protoreflect.Name(key))
		if fd == nil {
			fd = md.Fields().ByJSONName(key)
		}
		if fd == nil {
			continue
		}
		for _, v := range values {
			switch fd.Kind() {
			case protoreflect.EnumKind:
				if fd.Enum().Values().ByName(protoreflect.Name(v)) != nil {
					continue
				}
				if n, err := strconv.ParseInt(v, 10, 32); err == nil && fd.Enum().Values().ByNumber(protoreflect.EnumNumber(n)) != nil {
					continue
				}
				return flock.FieldErrorf(string(fd.Name()), "query parameter %s: %q is not a %s; use one of %s", key, v, fd.Enum().Name(), allowedEnumNames(fd))
			case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
				if _, err := strconv.ParseInt(v, 10, 32); err != nil {
					return flock.FieldErrorf(string(fd.Name()), "query parameter %s must be a whole number, not %q", key, v)
				}
			case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					return flock.FieldErrorf(string(fd.Name()), "query parameter %s must be a whole number, not %q", key, v)
				}
			case protoreflect.BoolKind:
				// What vanguard takes: strconv.ParseBool's spellings.
				if _, err := strconv.ParseBool(v); err != nil {
					return flock.FieldErrorf(string(fd.Name()), "query parameter %s must be true or false, not %q", key, v)
				}
			}
		}
	}
	return nil
}
