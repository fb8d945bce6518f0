package store

import (
	"context"
	"database/sql/driver"
	"errors"

	"github.com/uptrace/bun/driver/pgdriver"
)

// pgConnector is pgdriver's connector with one fix, written here because
// pgdriver v1.2.18 has no option for it: a prepared statement that fails
// with anything but an answer of Postgres closes its connection.
//
// pgdriver closes a connection whose plain query fails on the network (a
// read cut off by the context's deadline, for one), but not when a prepared
// statement, or its preparation, fails so. The connection then went back to
// the pool with Postgres's answer still unread, and the next statement on it
// read that answer: "pgdriver: newRows: unexpected message '2'" (Postgres's
// BindComplete). The soak test met it once, where streams reconnect on a
// deadline; TestPrepared_StatementCutOffByItsDeadlineLeavesNoAnswerBehind
// makes it every time without this. A closed connection is invalid to
// database/sql (pgdriver's IsValid), which drops it instead of reusing it.
type pgConnector struct{ *pgdriver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return pgConn{cn.(*pgdriver.Conn)}, nil
}

// pgConn is a pgdriver connection whose prepared statements close it when
// they fail off the protocol (see pgConnector).
type pgConn struct{ *pgdriver.Conn }

func (cn pgConn) Prepare(query string) (driver.Stmt, error) {
	return cn.PrepareContext(context.Background(), query)
}

func (cn pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := cn.Conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, cn.failed(err)
	}
	return pgStmt{Stmt: st, cn: cn}, nil
}

// failed closes the connection unless err is Postgres's answer, after which
// pgdriver has read up to the end of it and the connection is in step.
func (cn pgConn) failed(err error) error {
	var pgErr pgdriver.Error
	if !errors.As(err, &pgErr) {
		_ = cn.Conn.Close()
	}
	return err
}

type pgStmt struct {
	driver.Stmt
	cn pgConn
}

func (s pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	res, err := s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	if err != nil {
		return nil, s.cn.failed(err)
	}
	return res, nil
}

func (s pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, s.cn.failed(err)
	}
	return rows, nil
}
