package notify

import "github.com/flock-social/flock/internal/page"

// decode reads the page size and the keyset position of a list.
func decode(kind string, size int32, token string) (int, string, error) {
	cur, _, err := page.Decode(kind, token)
	if err != nil {
		return 0, "", err
	}
	return page.Size(size), cur.ID, nil
}

// nextPage trims the probe row and makes the next token.
func nextPage[T any](kind string, rows []T, n int, id func(T) string) ([]T, string) {
	return page.Next(rows, n, func(r T) page.Cursor { return page.Cursor{Kind: kind, ID: id(r)} })
}
