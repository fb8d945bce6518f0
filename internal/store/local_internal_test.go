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
