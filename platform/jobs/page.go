package jobs

import (
	"encoding/base64"
	"fmt"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integration"
)

// StartKey checks f's page limit and returns the key its cursor stands
// for ("" from the first item). A cursor is the last key of a page,
// opaque to clients; one the platform did not return is ErrInvalid.
func (f ListFilter) StartKey() (string, error) {
	if f.Limit < 1 || f.Limit > MaxPageItems {
		return "", fmt.Errorf("%w: limit %d: want 1..%d", ErrInvalid, f.Limit, MaxPageItems)
	}
	if f.After == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(f.After)
	if err != nil || len(b) > integration.MaxKeyBytes {
		return "", fmt.Errorf("%w: cursor %q is not one this platform returned", ErrInvalid, f.After)
	}
	return string(b), nil
}

// A Pager fills a Page with items read in key order, within the page's
// limits: the filter's item count and MaxPageBytes.
type Pager struct {
	page  Page
	limit int
	bytes int
}

// NewPager returns a Pager of pages of at most limit items.
func NewPager(limit int) *Pager { return &Pager{limit: limit} }

// Add adds it to the page, or, when the page is full, sets the page's
// Next cursor and reports false: the caller stops reading.
func (p *Pager) Add(it api.Item) bool {
	size := len(it.Key) + len(it.Type) + len(it.Class) + len(it.From) + len(it.To) + len(it.Properties) + 128
	n := len(p.page.Items)
	if n == p.limit || (n > 0 && p.bytes+size > MaxPageBytes) {
		p.page.Next = base64.RawURLEncoding.EncodeToString([]byte(p.page.Items[n-1].Key))
		return false
	}
	p.bytes += size
	p.page.Items = append(p.page.Items, it)
	return true
}

// Page is the page filled.
func (p *Pager) Page() Page { return p.page }
