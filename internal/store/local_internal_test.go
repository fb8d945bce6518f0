package store

import "testing"

// A Postgres URL names this machine when its host is localhost, a loopback
// address or a Unix socket; any other host may be another machine.
func TestLocalPostgres_LoopbackAndSocketsOnly(t *testing.T) {
	for raw, want := range map[string]bool{
		"postgres://root@127.0.0.1:5432/flock":             true,
		"postgres://root@127.0.0.2/flock":                  true,
		"postgres://root@[::1]:5432/flock":                 true,
		"postgres://root@LocalHost/flock":                  true,
		"postgres:///flock":                                true,
		"postgresql:///flock?host=/var/run/postgresql":     true,
		"postgres://root@db.internal:5432/flock":           false,
		"postgres://root@10.0.0.5/flock":                   false,
		"postgres://root@[fd00::5]/flock":                  false,
		"postgres://root@localhost.example.com/flock":      false,
		"postgres://root@127.0.0.1/flock?host=db.internal": false,
	} {
		if got := localPostgres(raw); got != want {
			t.Errorf("localPostgres(%q) = %v, want %v", raw, got, want)
		}
	}
}

// A set of ids is one Postgres array literal, each id double-quoted, with
// its quotes and backslashes escaped; on SQLite a JSON array.
func TestIDSetArg_QuotesAndEscapesEachID(t *testing.T) {
	ids := []string{"01M97BBKBGPTPJSPV5QQR7RDYF", `a"b`, `c\d`, "", "é"}
	if got, want := (&DB{Engine: Postgres}).idSetArg(ids), `{"01M97BBKBGPTPJSPV5QQR7RDYF","a\"b","c\\d","","é"}`; got != want {
		t.Errorf("Postgres: %s, want %s", got, want)
	}
	if got, want := (&DB{Engine: Postgres}).idSetArg(nil), "{}"; got != want {
		t.Errorf("Postgres, none: %s, want %s", got, want)
	}
	if got, want := (&DB{Engine: SQLite}).idSetArg(ids), `["01M97BBKBGPTPJSPV5QQR7RDYF","a\"b","c\\d","","é"]`; got != want {
		t.Errorf("SQLite: %s, want %s", got, want)
	}
}
