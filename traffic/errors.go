package traffic

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/go-sql-driver/mysql"

	"github.com/firedrill-dev/firedrill/traffic/format"
	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

// errShed is returned when the database concurrency limit rejects a query.
var errShed = errors.New("db: concurrency limit reached, shed")

// Classify maps an error to its firedrill_errors class.
func Classify(err error) string {
	var me *mysql.MySQLError
	var ne net.Error
	var pe *memcache.ProtocolError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errShed):
		return ClassShed
	case errors.Is(err, memcache.ErrBreakerOpen):
		return ClassBreakerOpen
	case errors.As(err, &me):
		switch me.Number {
		case 1040, 1203: // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS
			return ClassTooManyConnections
		case 1969, 3024: // MariaDB max_statement_time, MySQL max_execution_time
			return ClassTimeout
		}
		return ClassOther
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, driver.ErrBadConn):
		return ClassReset
	case errors.As(err, &pe), errors.Is(err, format.ErrCorrupt):
		return ClassDecode
	}
	return ClassOther
}
