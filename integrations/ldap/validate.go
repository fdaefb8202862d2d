package ldap

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-ldap/ldap/v3"

	"github.com/collectorhq/collector/integration"
)

// Validate is the validate mode (an integration.ValidateFunc): it
// connects, binds, reads the root DSE and one entry of each kind a run
// collects, and emits nothing. A kind with no entry is no failure (a
// directory may have no computers); a search the server refuses is.
func Validate(ctx context.Context, raw []byte, v *integration.Validation, log *slog.Logger) error {
	c, err := parseConfig(raw)
	if err != nil {
		return err
	}
	s, err := open(ctx, c, log)
	if err != nil {
		return err
	}
	defer s.conn.Close()
	how := "TLS (ldaps)"
	switch {
	case c.StartTLS:
		how = "StartTLS"
	case c.URL[:5] == "ldap:":
		how = "plaintext"
	}
	v.Passed("connect", fmt.Sprintf("%s over %s", c.URL, how))
	v.Passed("bind", "as "+c.BindDN)
	kindName := map[string]string{TypeOU: "organizational units", TypeUser: "users", TypeGroup: "groups", TypeComputer: "computers"}
	r := &run{searcher: s.searcher, cfg: c, ad: s.ad}
	for _, k := range []struct {
		kind     kind
		override string
	}{{kindOU, c.OUFilter}, {kindUser, c.UserFilter}, {kindGroup, c.GroupFilter}, {kindComputer, c.ComputerFilter}} {
		n, err := s.probe(r.filter(k.kind, k.override))
		if err != nil {
			return err
		}
		v.Passed("read "+kindName[k.kind.typ], fmt.Sprintf("%d found in a first look under %s", n, s.base))
	}
	return nil
}

// probe reads at most one entry matching filter (a size-limited search:
// reaching the limit is success here).
func (s *session) probe(filter string) (int, error) {
	req := ldap.NewSearchRequest(s.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false, filter, []string{"1.1"}, nil)
	res, err := s.conn.Search(req)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return len(res.Entries), nil
	}
	if err != nil {
		return 0, classify(fmt.Sprintf("search %s under %s", filter, s.base), err)
	}
	return len(res.Entries), nil
}
