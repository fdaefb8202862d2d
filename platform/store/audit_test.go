package store_test

import (
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/store"
)

func chain(t *testing.T, n int) []store.AuditEntry {
	t.Helper()
	var es []store.AuditEntry
	prevSeq, prevHash := int64(0), store.GenesisHash
	for i := 0; i < n; i++ {
		e, err := store.NewEntry(prevSeq, prevHash, store.Event{Time: time.Unix(int64(1000+i), 0), Actor: "admin",
			Action: "collector.created", Target: "col_x", Details: map[string]any{"b": 2, "a": []string{"x"}}})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
		prevSeq, prevHash = e.Seq, e.Hash
	}
	return es
}

func verify(es []store.AuditEntry) store.VerifyResult {
	v := store.NewVerifier(nil)
	for _, e := range es {
		if !v.Next(e) {
			break
		}
	}
	return v.Result()
}

func TestVerifier(t *testing.T) {
	es := chain(t, 5)
	if es[0].Details != `{"a":["x"],"b":2}` {
		t.Errorf("details not canonical: %s", es[0].Details)
	}
	if r := verify(es); !r.OK || r.Entries != 5 || r.Head != es[4].Hash {
		t.Fatalf("intact chain: %+v", r)
	}
	cases := map[string]struct {
		edit func([]store.AuditEntry) []store.AuditEntry
		bad  int64
	}{
		"edited details": {func(es []store.AuditEntry) []store.AuditEntry { es[2].Details = `{}`; return es }, 3},
		"edited time":    {func(es []store.AuditEntry) []store.AuditEntry { es[1].Time = es[1].Time.Add(1); return es }, 2},
		"deleted middle": {func(es []store.AuditEntry) []store.AuditEntry { return append(es[:2], es[3:]...) }, 3},
		"deleted first":  {func(es []store.AuditEntry) []store.AuditEntry { return es[1:] }, 1},
		"rehashed": {func(es []store.AuditEntry) []store.AuditEntry {
			es[1].Actor = "mallory"
			es[1].Hash = es[1].ComputeHash()
			return es
		}, 3},
		"swapped": {func(es []store.AuditEntry) []store.AuditEntry {
			es[1], es[2] = es[2], es[1]
			return es
		}, 2},
	}
	for name, c := range cases {
		r := verify(c.edit(chain(t, 5)))
		if r.OK || r.BadSeq != c.bad {
			t.Errorf("%s: %+v, want bad seq %d", name, r, c.bad)
		}
	}
}

func TestHashFieldsUnambiguous(t *testing.T) {
	a := store.AuditEntry{Seq: 1, Actor: "ab", Action: "c", Details: "{}", PrevHash: store.GenesisHash}
	b := a
	b.Actor, b.Action = "a", "bc"
	if a.ComputeHash() == b.ComputeHash() {
		t.Errorf("field boundaries do not affect the hash")
	}
}
