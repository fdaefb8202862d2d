package postgres

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A stmt is a statement written with named arguments (@name, as
// pgx.NamedArgs takes them), rewritten once to PostgreSQL's positional
// ones ($n). pgx.NamedArgs would parse and rewrite these multi-KB
// statements on every call: a fifth of the queue's CPU under load
// (BenchmarkVersusRiver).
type stmt struct {
	sql   string   // with $1, $2, ... in place of the names
	names []string // names[i] is the argument $i+1
}

// positional rewrites named's @names to $n, numbered by first
// appearance, as pgx.NamedArgs does (an @ followed by a letter or an
// underscore starts a name), leaving quoted strings, quoted identifiers
// and -- comments alone.
func positional(named string) stmt {
	var b strings.Builder
	var s stmt
	num := map[string]int{}
	for i := 0; i < len(named); {
		c := named[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(named[i+1:], c)
			if end < 0 {
				end = len(named) - i - 1
			}
			// A doubled quote inside is two quoted runs back to back.
			b.WriteString(named[i : i+end+2])
			i += end + 2
		case c == '-' && strings.HasPrefix(named[i:], "--"):
			end := strings.IndexByte(named[i:], '\n')
			if end < 0 {
				end = len(named) - i
			}
			b.WriteString(named[i : i+end])
			i += end
		case c == '@' && i+1 < len(named) && nameStart(named[i+1]):
			j := i + 1
			for j < len(named) && (nameStart(named[j]) || named[j] >= '0' && named[j] <= '9') {
				j++
			}
			name := named[i+1 : j]
			n, ok := num[name]
			if !ok {
				s.names = append(s.names, name)
				n = len(s.names)
				num[name] = n
			}
			b.WriteString("$" + strconv.Itoa(n))
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	s.sql = b.String()
	return s
}

func nameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// args lists a's values in s's order. A name a lacks is NULL, as with
// pgx.NamedArgs.
func (s stmt) args(a pgx.NamedArgs) []any {
	out := make([]any, len(s.names))
	for i, n := range s.names {
		out[i] = a[n]
	}
	return out
}

func (s stmt) queryRow(ctx context.Context, db querier, a pgx.NamedArgs) pgx.Row {
	return db.QueryRow(ctx, s.sql, s.args(a)...)
}

func (s stmt) query(ctx context.Context, db querier, a pgx.NamedArgs) (pgx.Rows, error) {
	return db.Query(ctx, s.sql, s.args(a)...)
}

func (s stmt) exec(ctx context.Context, db querier, a pgx.NamedArgs) (pgconn.CommandTag, error) {
	return db.Exec(ctx, s.sql, s.args(a)...)
}

// queue adds s to batch b.
func (s stmt) queue(b *pgx.Batch, a pgx.NamedArgs) { b.Queue(s.sql, s.args(a)...) }
