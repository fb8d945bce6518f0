package server

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"testing"

	"connectrpc.com/connect"
)

// A request whose client went away fails however the store noticed it
// (database/sql rolls the transaction back on cancel, so the next statement
// says "transaction has already been committed or rolled back"): that is
// canceled, not an internal error to log.
func TestToConnectError_ClientGoneIsNotInternal(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	err := toConnectError(canceled, log, connect.Spec{Procedure: "/flock.v1.PostService/LikePost"}, fmt.Errorf("like post: %w", sql.ErrTxDone))
	if connect.CodeOf(err) != connect.CodeCanceled {
		t.Errorf("code = %v, want canceled", connect.CodeOf(err))
	}
	if logs.Len() != 0 {
		t.Errorf("logged: %s", logs.String())
	}
	err = toConnectError(context.Background(), log, connect.Spec{Procedure: "/flock.v1.PostService/LikePost"}, fmt.Errorf("like post: %w", sql.ErrTxDone))
	if connect.CodeOf(err) != connect.CodeInternal || logs.Len() == 0 {
		t.Errorf("with a live request: %v (logged %q), want internal and a log line", err, logs.String())
	}
}
