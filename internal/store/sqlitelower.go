package store

import (
	"database/sql/driver"
	"strings"

	"modernc.org/sqlite"
)

// sqliteLower is lower() for all of Unicode on SQLite, whose built-in folds
// ASCII letters only: on the default engine a search for "Ärzte" missed the
// group named "Ärzte Berlin" (Postgres's lower() folds them all). It has a
// name of its own, so that the expression indexes built with lower() keep
// their meaning; searches that read every name anyway use it.
const sqliteLower = "flock_lower"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(sqliteLower, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return strings.ToLower(v), nil
		case []byte:
			return strings.ToLower(string(v)), nil
		default:
			return v, nil // NULL
		}
	})
}

// lowerFunc is the SQL function that lower-cases text as strings.ToLower
// does, on this engine.
func (db *DB) lowerFunc() string {
	if db.Engine == SQLite {
		return sqliteLower
	}
	return "lower"
}
