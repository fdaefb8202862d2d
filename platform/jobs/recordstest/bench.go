package recordstest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/queue"
)

// directoryBatch is the records per batch in BenchDirectory, as the
// runner batches them.
const directoryBatch = 20_000

// BenchDirectory ingests a directory's shape into a new backend, one job:
// users users (keyed by random UUIDs, as directories key them), each a
// member of two of 1,000 groups and in one of 50 OUs — four records a
// user, three of them relationships whose keys join two UUIDs — in
// batches of 20,000 records, then finishes the job (the sweep included).
// "first" is the first sync; "again" the next one, the same records
// again (every key stored already). It reports records/s and µs a record.
func BenchDirectory(b *testing.B, newBackend func(*testing.B) Backend, users int) {
	lines := directoryLines(users)
	for _, again := range []bool{false, true} {
		name := map[bool]string{false: "first", true: "again"}[again]
		b.Run(name, func(b *testing.B) {
			var took time.Duration
			for b.Loop() {
				b.StopTimer()
				be := newBackend(b)
				if again {
					syncDirectory(b, be, lines)
				}
				b.StartTimer()
				took += syncDirectory(b, be, lines)
			}
			n := float64(b.N) * float64(len(lines))
			b.ReportMetric(n/took.Seconds(), "records/s")
			b.ReportMetric(float64(took.Microseconds())/n, "µs/record")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// syncDirectory runs one job that sends lines and finishes, and returns
// the time from its first batch to its finish.
func syncDirectory(b *testing.B, be Backend, lines []string) time.Duration {
	if _, _, err := be.Queue.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "dir", CollectorID: "col"}); err != nil {
		b.Fatal(err)
	}
	j, err := be.Queue.Next(ctx, queue.NextRequest{CollectorID: "col"})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var body bytes.Buffer
	for seq, first := 1, 0; first < len(lines); seq, first = seq+1, first+directoryBatch {
		body.Reset()
		for _, l := range lines[first:min(first+directoryBatch, len(lines))] {
			body.WriteString(l)
			body.WriteByte('\n')
		}
		batch, res, err := jobs.ParseBatch(jobs.BatchKey{IntegrationID: "dir", JobID: j.ID, LeaseID: j.LeaseID, Seq: seq}, &body)
		if err != nil || res.Refused != 0 {
			b.Fatalf("batch %d: %+v, %v", seq, res, err)
		}
		if _, err := be.Records.Ingest(ctx, batch); err != nil {
			b.Fatalf("batch %d: %v", seq, err)
		}
	}
	if _, sw, err := be.Records.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true}, jobs.RunReport{}); err != nil || sw.Entities+sw.Relationships != 0 {
		b.Fatalf("finish: swept %+v, %v; want nothing swept", sw, err)
	}
	return time.Since(start)
}

// directoryLines is the records of BenchDirectory, in the order the LDAP
// integration sends them: OUs, users with their OU, groups with their
// members.
func directoryLines(users int) []string {
	uuid := func() string {
		var u [16]byte
		rand.Read(u[:])
		return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	}
	const groups, ous = 1_000, 50
	ou, group, user := make([]string, ous), make([]string, groups), make([]string, users)
	var lines []string
	for i := range ou {
		ou[i] = "ldap_ou:" + uuid()
		lines = append(lines, fmt.Sprintf(`{"entity":{"_key":%q,"_type":"ldap_ou","_class":"Group","name":"ou%d","dn":"ou=ou%d,dc=example,dc=com"}}`, ou[i], i, i))
	}
	for i := range user {
		user[i] = "ldap_user:" + uuid()
		lines = append(lines, fmt.Sprintf(`{"entity":{"_key":%q,"_type":"ldap_user","_class":"User","name":"User %d","username":"user%d","email":"user%d@example.com","active":true,"dn":"uid=user%d,ou=ou%d,dc=example,dc=com"}}`,
			user[i], i, i, i, i, i%ous))
		o := ou[i%ous]
		lines = append(lines, fmt.Sprintf(`{"relationship":{"_key":%q,"_type":"ldap_ou_has_ldap_user","_class":"HAS","_fromEntityKey":%q,"_toEntityKey":%q}}`, o+"|HAS|"+user[i], o, user[i]))
	}
	for i := range group {
		group[i] = "ldap_group:" + uuid()
		lines = append(lines, fmt.Sprintf(`{"entity":{"_key":%q,"_type":"ldap_group","_class":"UserGroup","name":"group%d","dn":"cn=group%d,dc=example,dc=com"}}`, group[i], i, i))
	}
	for u := range user {
		for _, g := range []int{u % groups, (u*7 + 3) % groups} {
			lines = append(lines, fmt.Sprintf(`{"relationship":{"_key":%q,"_type":"ldap_user_member_of_ldap_group","_class":"MEMBER_OF","_fromEntityKey":%q,"_toEntityKey":%q}}`,
				user[u]+"|MEMBER_OF|"+group[g], user[u], group[g]))
		}
	}
	return lines
}
