// Package page implements Flock's cursor pagination: page sizes (default 20,
// at most 100, larger requests clamped) and opaque page tokens that carry a
// keyset position, never an offset, so pages stay correct while rows are
// added in front of them.
package page

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/flock-social/flock"
)

// Page size bounds.
const (
	DefaultSize = 20
	MaxSize     = 100
	// maxTokenLen bounds what Decode will look at (the proto allows 512).
	maxTokenLen = 512
)

// Size returns the page size to use for a requested one: DefaultSize for 0
// (or less), MaxSize for anything larger than it.
func Size(requested int32) int {
	switch {
	case requested <= 0:
		return DefaultSize
	case requested > MaxSize:
		return MaxSize
	}
	return int(requested)
}

// Cursor is a keyset position: the sort key of the last row of a page.
// Which fields are set depends on the list's order.
type Cursor struct {
	// Kind names the list the token belongs to, so that a token of one list
	// is refused by another instead of silently meaning something else.
	Kind  string    `json:"k"`
	ID    string    `json:"i,omitempty"`
	Time  time.Time `json:"t,omitzero"`
	Score float64   `json:"s,omitempty"`
}

// Encode returns the opaque page token for c.
func Encode(c Cursor) string {
	b, _ := json.Marshal(c) // a Cursor always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode parses a page token of the list kind. An empty token is the first
// page (a zero Cursor, ok false). Returns EINVALID for a token that was not
// made by Encode for this kind of list.
func Decode(kind, token string) (c Cursor, ok bool, err error) {
	if token == "" {
		return Cursor{}, false, nil
	}
	bad := flock.FieldErrorf("page_token", "page_token is not valid for this list; pass the nextPageToken of the previous page unchanged, or leave it empty for the first page")
	if len(token) > maxTokenLen {
		return Cursor{}, false, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return Cursor{}, false, bad
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Kind != kind {
		return Cursor{}, false, bad
	}
	return c, true, nil
}

// Next returns the token of the page after rows when the query fetched one
// row more than size (the caller asks for size+1 to learn whether there is
// a next page), and trims that extra row. last makes the cursor of a row.
func Next[T any](rows []T, size int, last func(T) Cursor) ([]T, string) {
	if len(rows) <= size {
		return rows, ""
	}
	rows = rows[:size]
	return rows, Encode(last(rows[size-1]))
}
