package ldap

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"

	"github.com/collectorhq/collector/integration"
)

// searcher runs the paged searches of one run on one connection.
type searcher struct {
	conn     *ldap.Conn
	base     string
	pageSize uint32
}

// each runs a subtree search with the paged results control (RFC 2696)
// and calls fn for every entry; the server's cookie is the page token. A
// server without paging support answers the first page with no cookie:
// that is the whole result, as long as no size limit cut it (which is an
// error, never a silently short run). The next page is fetched while fn
// works through this one: at most two pages are held.
func (s *searcher) each(ctx context.Context, filter string, attrs []string, fn func(*ldap.Entry) error) error {
	return s.eachPaged(ctx, filter, attrs, s.pageSize, fn)
}

// groupPageSize bounds the page of a group search: a group carries its
// members (up to 1500 values of an Active Directory group, many more on
// other servers), and go-ldap holds a page whole, each value in a buffer
// of at least 512 bytes, while the page before it is worked through. At
// 500 groups of 200 members (BenchmarkLDAPUsers' directory), the live heap
// peaked at 159 MiB (of the manifest's 256Mi); at 50, 29 MiB.
const groupPageSize = 50

// pageAsked, when a test sets it, is told the filter and size of every
// page asked for.
var pageAsked func(filter string, size uint32)

// eachPaged is each with pages of pageSize entries.
func (s *searcher) eachPaged(ctx context.Context, filter string, attrs []string, pageSize uint32, fn func(*ldap.Entry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	entries := make(chan *ldap.Entry, pageSize)
	var fetchErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(entries)
		fetchErr = integration.Paginate(ctx, s.fetcher(filter, attrs, pageSize), func(e *ldap.Entry) error {
			select {
			case entries <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	var err error
	for e := range entries {
		if err == nil {
			if err = fn(e); err != nil {
				cancel()
			}
		}
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return fetchErr
}

// fetcher reads one page of a paged search.
func (s *searcher) fetcher(filter string, attrs []string, pageSize uint32) func(context.Context, string) (integration.Page[*ldap.Entry], error) {
	return func(ctx context.Context, token string) (integration.Page[*ldap.Entry], error) {
		if pageAsked != nil {
			pageAsked(filter, pageSize)
		}
		paging := ldap.NewControlPaging(pageSize)
		paging.SetCookie([]byte(token))
		req := ldap.NewSearchRequest(s.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, []ldap.Control{paging})
		res, err := s.conn.Search(req)
		if err != nil {
			return integration.Page[*ldap.Entry]{}, classify(fmt.Sprintf("search %s under %s", filter, s.base), err)
		}
		next := ""
		if c, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging); ok {
			next = string(c.Cookie)
		}
		return integration.Page[*ldap.Entry]{Items: res.Entries, Next: next}, nil
	}
}

// rangedValues returns every value of a multi-valued attribute (member)
// of an entry. Active Directory returns at most MaxValRange values (1500)
// per search and names the rest member;range=0-1499: the remaining
// ranges are read with base searches until the last, member;range=N-*.
func (s *searcher) rangedValues(ctx context.Context, e *ldap.Entry, attr string) ([]string, error) {
	vals, next, ok := rangeOf(e, attr)
	if !ok {
		return e.GetEqualFoldAttributeValues(attr), nil
	}
	for next >= 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		want := fmt.Sprintf("%s;range=%d-*", attr, next)
		req := ldap.NewSearchRequest(e.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{want}, nil)
		res, err := s.conn.Search(req)
		if err != nil {
			return nil, classify(fmt.Sprintf("read %s of %s", want, e.DN), err)
		}
		if len(res.Entries) != 1 {
			return nil, fmt.Errorf("read %s of %s: %d entries, want 1", want, e.DN, len(res.Entries))
		}
		more, n, ok := rangeOf(res.Entries[0], attr)
		if !ok {
			break
		}
		vals, next = append(vals, more...), n
	}
	return vals, nil
}

// rangeOf finds a ranged attribute (attr;range=LOW-HIGH) on an entry: its
// values, and the low bound of the next range (-1 after the last, whose
// high bound is *).
func rangeOf(e *ldap.Entry, attr string) (vals []string, next int, ok bool) {
	prefix := strings.ToLower(attr) + ";range="
	for _, a := range e.Attributes {
		spec, found := strings.CutPrefix(strings.ToLower(a.Name), prefix)
		if !found {
			continue
		}
		_, high, _ := strings.Cut(spec, "-")
		if high == "*" {
			return a.Values, -1, true
		}
		h, err := strconv.Atoi(high)
		if err != nil || h < 0 {
			return a.Values, -1, true
		}
		return a.Values, h + 1, true
	}
	return nil, 0, false
}
