package integration

import (
	"context"
	"fmt"
)

// Page is one page of a listing: its items and the token of the next
// page ("" on the last page).
type Page[T any] struct {
	Items []T
	Next  string
}

// MaxPages bounds a listing Paginate walks, so a target that never says
// "last page" cannot keep a run going for ever.
const MaxPages = 10_000_000

// Paginate walks a paged listing: fetch gets the page for a token (""
// for the first), each is called for every item in order. It stops at
// the last page, at the first error, or when ctx ends; a target that
// hands back a token it already gave (a loop) is an error, not an endless
// run. Memory holds one page at a time.
func Paginate[T any](ctx context.Context, fetch func(ctx context.Context, token string) (Page[T], error), each func(T) error) error {
	token := ""
	prev := map[string]bool{}
	for pages := 1; ; pages++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := fetch(ctx, token)
		if err != nil {
			return fmt.Errorf("page %d: %w", pages, err)
		}
		for _, it := range page.Items {
			if err := each(it); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		if prev[page.Next] || page.Next == token {
			return fmt.Errorf("page %d: the target gave a page token it gave before: the listing would never end", pages)
		}
		if pages >= MaxPages {
			return fmt.Errorf("more than %d pages", MaxPages)
		}
		// Only the last few tokens are kept: a loop goes back to a recent one.
		if len(prev) > 64 {
			clear(prev)
		}
		prev[page.Next] = true
		token = page.Next
	}
}
