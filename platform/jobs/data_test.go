package jobs_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/jobs"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

func openData(t *testing.T) *jobs.Data {
	t.Helper()
	db, err := qsqlite.OpenDB(filepath.Join(t.TempDir(), "platform.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d, err := jobs.OpenData(context.Background(), db, db)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func entity(key, typ string) string {
	return fmt.Sprintf(`{"entity":{"_key":%q,"_type":%q,"_class":"Record","v":1}}`, key, typ)
}

func keys(t *testing.T, d *jobs.Data, kind, integ string) []string {
	t.Helper()
	items, err := d.List(context.Background(), kind, jobs.ListFilter{IntegrationID: integ})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.Key)
	}
	return out
}

func TestIngestRefusesBadLinesAndCountsThem(t *testing.T) {
	d := openData(t)
	ctx := context.Background()
	body := strings.Join([]string{
		entity("a", "user"),
		`{"entity":{"_key":"b","_type":"user"}}`,
		`garbage`,
		`{"relationship":{"_key":"r1","_type":"t","_class":"HAS","_fromEntityKey":"a","_toEntityKey":"c"}}`,
		``,
		entity("c", "user"),
	}, "\n")
	res, err := d.Ingest(ctx, jobs.BatchKey{IntegrationID: "i1", JobID: "j1", LeaseID: "l1", Seq: 1}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 3 || res.Refused != 2 || len(res.Errors) != 2 {
		t.Fatalf("result = %+v, want 3 accepted, 2 refused", res)
	}
	if res.Errors[0].Line != 2 || !strings.Contains(res.Errors[0].Reason, "no _class") || res.Errors[1].Line != 3 {
		t.Errorf("refusals = %+v, want line 2 (no _class) and line 3", res.Errors)
	}
	if got := keys(t, d, api.KindEntity, "i1"); strings.Join(got, ",") != "a,c" {
		t.Errorf("entities = %v, want a,c", got)
	}
	if got := keys(t, d, api.KindRelationship, "i1"); strings.Join(got, ",") != "r1" {
		t.Errorf("relationships = %v", got)
	}
	rec, ref, _ := d.JobCounts(ctx, "j1")
	if rec != 3 || ref != 2 {
		t.Errorf("job counts = %d, %d", rec, ref)
	}
}

func TestIngestRetriedBatchAppliedOnce(t *testing.T) {
	d := openData(t)
	ctx := context.Background()
	k := jobs.BatchKey{IntegrationID: "i1", JobID: "j1", LeaseID: "l1", Seq: 1}
	for i := 0; i < 3; i++ {
		res, err := d.Ingest(ctx, k, strings.NewReader(entity("a", "user")+"\n"+entity("b", "user")))
		if err != nil {
			t.Fatal(err)
		}
		if (i == 0) == res.Duplicate {
			t.Errorf("try %d: duplicate = %v", i, res.Duplicate)
		}
	}
	rec, _, _ := d.JobCounts(ctx, "j1")
	if rec != 2 {
		t.Errorf("records counted %d times, want 2", rec)
	}
	// A new lease (the job run again) applies its batches anew, upserting.
	k.LeaseID = "l2"
	if res, err := d.Ingest(ctx, k, strings.NewReader(entity("a", "user"))); err != nil || res.Duplicate {
		t.Fatalf("new lease batch = %+v, %v", res, err)
	}
	if got := keys(t, d, api.KindEntity, "i1"); len(got) != 2 {
		t.Errorf("entities = %v: upsert must not duplicate", got)
	}
}

func TestIngestLongLineRefusedNotHeld(t *testing.T) {
	d := openData(t)
	long := `{"entity":{"_key":"x","_type":"t","_class":"c","blob":"` + strings.Repeat("x", api.MaxRecordBytes+10) + `"}}`
	body := entity("a", "t") + "\n" + long + "\n" + entity("b", "t") + "\n"
	res, err := d.Ingest(context.Background(), jobs.BatchKey{IntegrationID: "i", JobID: "j", LeaseID: "l", Seq: 1}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.Refused != 1 || res.Errors[0].Line != 2 || !strings.Contains(res.Errors[0].Reason, "limit") {
		t.Fatalf("result = %+v, want line 2 refused over the limit", res)
	}
}

func TestSweepMarksWhatTheRunDidNotSend(t *testing.T) {
	d := openData(t)
	ctx := context.Background()
	ingest := func(job string, ks ...string) {
		var lines []string
		for _, k := range ks {
			lines = append(lines, entity(k, "t"))
		}
		if _, err := d.Ingest(ctx, jobs.BatchKey{IntegrationID: "i1", JobID: job, LeaseID: "l", Seq: 1}, strings.NewReader(strings.Join(lines, "\n"))); err != nil {
			t.Fatal(err)
		}
	}
	ingest("j1", "a", "b", "c")
	if _, _, err := d.Sweep(ctx, "i1", "j1"); err != nil {
		t.Fatal(err)
	}
	// Another integration's data is never touched.
	if _, err := d.Ingest(ctx, jobs.BatchKey{IntegrationID: "i2", JobID: "x", LeaseID: "l", Seq: 1}, strings.NewReader(entity("z", "t"))); err != nil {
		t.Fatal(err)
	}
	ingest("j2", "a", "c")
	n, _, err := d.Sweep(ctx, "i1", "j2")
	if err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want 1 deleted", n, err)
	}
	if got := keys(t, d, api.KindEntity, "i1"); strings.Join(got, ",") != "a,c" {
		t.Errorf("live entities = %v, want a,c", got)
	}
	if got := keys(t, d, api.KindEntity, "i2"); strings.Join(got, ",") != "z" {
		t.Errorf("other integration = %v, want z", got)
	}
	all, _ := d.List(ctx, api.KindEntity, jobs.ListFilter{IntegrationID: "i1", IncludeDeleted: true})
	if len(all) != 3 || all[1].Key != "b" || all[1].DeletedAt == nil {
		t.Errorf("b must be kept, marked deleted: %+v", all)
	}
	// b comes back in a later run: it is live again.
	ingest("j3", "a", "b", "c")
	if got := keys(t, d, api.KindEntity, "i1"); len(got) != 3 {
		t.Errorf("after b returned: %v", got)
	}
}

func TestLogsCapped(t *testing.T) {
	d := openData(t)
	ctx := context.Background()
	chunk := []byte(strings.Repeat("l", 1<<20))
	for i := 0; i < 5; i++ {
		if err := d.AppendLogs(ctx, "j", chunk); err != nil {
			t.Fatal(err)
		}
	}
	logs, err := d.Logs(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "bytes of logs dropped") || len(logs) > jobs.MaxJobLogBytes+200 {
		t.Errorf("logs of %d bytes, want capped at %d with a note", len(logs), jobs.MaxJobLogBytes)
	}
}

func FuzzIngest(f *testing.F) {
	f.Add([]byte(entity("a", "t") + "\n" + `{"relationship":{"_key":"r","_type":"t","_class":"c","_fromEntityKey":"a","_toEntityKey":"b"}}`))
	f.Add([]byte("garbage\n\n{}"))
	db, err := qsqlite.OpenDB(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	d, err := jobs.OpenData(context.Background(), db, db)
	if err != nil {
		f.Fatal(err)
	}
	seq := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		seq++
		lines := 0
		for _, l := range strings.Split(string(body), "\n") {
			if strings.TrimRight(l, "\r") != "" {
				lines++
			}
		}
		res, err := d.Ingest(context.Background(), jobs.BatchKey{IntegrationID: "i", JobID: "j", LeaseID: "l", Seq: seq}, strings.NewReader(string(body)))
		if err != nil {
			return
		}
		if res.Accepted+res.Refused > lines {
			t.Fatalf("%d accepted + %d refused from %d non-empty lines", res.Accepted, res.Refused, lines)
		}
	})
}
