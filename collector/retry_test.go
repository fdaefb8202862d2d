package collector

import (
	"context"
	"net/http"
	"testing"
)

// TestRetryWithin: an answer that says when to come back (Retry-After) is
// returned at once, its reason intact, for the caller's loop; other
// transient answers are retried here; a 400 is not.
func TestRetryWithin(t *testing.T) {
	ctx := context.Background()
	full := &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"10"}}}
	if retry, err := retryWithin(ctx, full, nil); retry || err != nil {
		t.Errorf("503 with Retry-After: retry %v, %v; want the answer returned", retry, err)
	}
	if retry, _ := retryWithin(ctx, &http.Response{StatusCode: http.StatusBadGateway, Header: http.Header{}}, nil); !retry {
		t.Error("a 502 without Retry-After was not retried")
	}
	if retry, _ := retryWithin(ctx, &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{}}, nil); retry {
		t.Error("a 400 was retried")
	}
}
