package ldaptest

import (
	"bufio"
	"fmt"
	"io"
)

// Spec is the shape of a generated directory.
type Spec struct {
	Base      string // default dc=example,dc=com
	Users     int
	Groups    int
	OUs       int
	Computers int
}

// DefaultSpec is the e2e directory: 10,000 users, 1,000 groups, 50 OUs,
// 2,000 computers.
var DefaultSpec = Spec{Users: 10_000, Groups: 1_000, OUs: 50, Computers: 2_000}

// BenchSpec is the benchmarks' directory (P14's): 100,000 users, 1,000
// groups, 50 OUs.
var BenchSpec = Spec{Users: 100_000, Groups: 1_000, OUs: 50}

// Entities is how many entities the integration makes of the directory:
// one per user, group, OU and computer.
func (s Spec) Entities() int { return s.Users + s.Groups + s.OUs + s.Computers }

// Reader is the service account the integration binds as: it may read the
// directory and nothing else. Binding as it is subject to the size limit
// (the root DN would not be).
const Reader = "cn=collector"

func (s Spec) base() string {
	if s.Base == "" {
		return "dc=example,dc=com"
	}
	return s.Base
}

// OUDN is the DN of OU i: the first 40 sit under the base, the rest under
// OU i-40 (nested OUs).
func (s Spec) OUDN(i int) string {
	if i >= 40 {
		return fmt.Sprintf("ou=ou-%02d,%s", i, s.OUDN(i-40))
	}
	return fmt.Sprintf("ou=ou-%02d,%s", i, s.base())
}

// UserDN, GroupDN and ComputerDN name the generated entries.
func (s Spec) UserDN(i int) string { return fmt.Sprintf("uid=user-%06d,%s", i, s.OUDN(i%s.OUs)) }

// GroupDN is the DN of group j.
func (s Spec) GroupDN(j int) string { return fmt.Sprintf("cn=group-%04d,%s", j, s.OUDN(j%s.OUs)) }

// ComputerDN is the DN of computer k.
func (s Spec) ComputerDN(k int) string { return fmt.Sprintf("cn=computer-%05d,%s", k, s.OUDN(k%s.OUs)) }

// UserGroups are the groups user i is a direct member of.
func (s Spec) UserGroups(i int) []int {
	a, b := i%s.Groups, (i*7+3)%s.Groups
	if a == b {
		return []int{a}
	}
	return []int{a, b}
}

// Subgroups are the groups group j directly contains: every tenth group
// contains the next two, and the one after it the next (nesting two deep).
func (s Spec) Subgroups(j int) []int {
	var out []int
	switch j % 10 {
	case 0:
		out = []int{j + 1, j + 2}
	case 1:
		out = []int{j + 1}
	}
	var in []int
	for _, g := range out {
		if g < s.Groups {
			in = append(in, g)
		}
	}
	return in
}

// Generate writes the directory as LDIF: the base, the reader account
// (with the password hash given, {SSHA}...), the OUs, users, computers
// and groups, in an order slapadd accepts (parents first).
func Generate(w io.Writer, s Spec, readerPasswordHash string) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	base := s.base()
	fmt.Fprintf(bw, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n", base)
	fmt.Fprintf(bw, "dn: %s,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: collector\nuserPassword: %s\n\n", Reader, base, readerPasswordHash)
	for i := range s.OUs {
		fmt.Fprintf(bw, "dn: %s\nobjectClass: organizationalUnit\nou: ou-%02d\ndescription: Generated OU %d\n\n", s.OUDN(i), i, i)
	}
	for i := range s.Users {
		fmt.Fprintf(bw, "dn: %s\nobjectClass: inetOrgPerson\nuid: user-%06d\ncn: User %d\nsn: User%d\ngivenName: Test\nmail: user-%06d@example.com\nemployeeNumber: %d\n\n",
			s.UserDN(i), i, i, i, i, i)
	}
	for k := range s.Computers {
		fmt.Fprintf(bw, "dn: %s\nobjectClass: device\ncn: computer-%05d\nserialNumber: SN%05d\ndescription: Generated computer %d\n\n", s.ComputerDN(k), k, k, k)
	}
	members := make([][]int, s.Groups)
	for i := range s.Users {
		for _, g := range s.UserGroups(i) {
			members[g] = append(members[g], i)
		}
	}
	for j := range s.Groups {
		fmt.Fprintf(bw, "dn: %s\nobjectClass: groupOfNames\ncn: group-%04d\ndescription: Generated group %d\n", s.GroupDN(j), j, j)
		n := 0
		for _, i := range members[j] {
			fmt.Fprintf(bw, "member: %s\n", s.UserDN(i))
			n++
		}
		for _, g := range s.Subgroups(j) {
			fmt.Fprintf(bw, "member: %s\n", s.GroupDN(g))
			n++
		}
		if n == 0 { // groupOfNames must have a member
			fmt.Fprintf(bw, "member: %s,%s\n", Reader, base)
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}
