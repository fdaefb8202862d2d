package runner

import (
	"strings"
	"testing"

	"github.com/collectorhq/collector/crypto"
)

func TestRedactionCoversNestedAndMultiLineSecrets(t *testing.T) {
	job := &crypto.Job{
		Config:       []byte(`{"key":"-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----","sa":{"private":"nested-secret-value","n":[1,"list-secret-value"]},"url":"https://example"}`),
		SecretFields: []string{"key", "sa"},
	}
	secrets, err := secretValues(job)
	if err != nil {
		t.Fatal(err)
	}
	l := newLogSink(nil, secrets)
	l.consume(strings.NewReader("parse key: -----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n" +
		"sa=nested-secret-value and list-secret-value\nurl https://example\n"))
	got := l.buf.String()
	for _, leak := range []string{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "nested-secret-value", "list-secret-value"} {
		if strings.Contains(got, leak) {
			t.Errorf("logs hold %q:\n%s", leak, got)
		}
	}
	if !strings.Contains(got, "https://example") {
		t.Errorf("a value that is not secret was redacted:\n%s", got)
	}
}

func TestLongLogLineCutNotTheRest(t *testing.T) {
	l := newLogSink(nil, nil)
	l.consume(strings.NewReader("first\n" + strings.Repeat("x", 200<<10) + "\nlast line\n"))
	got := l.buf.String()
	if !strings.Contains(got, "first\n") || !strings.Contains(got, "line cut at 64 KiB") || !strings.HasSuffix(got, "last line\n") {
		t.Errorf("logs after a long line: %q", got[len(got)-min(len(got), 200):])
	}
	if len(got) > 70<<10 {
		t.Errorf("the long line was kept whole: %d bytes", len(got))
	}
}
