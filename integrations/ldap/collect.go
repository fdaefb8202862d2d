package ldap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/go-ldap/ldap/v3"

	"github.com/collectorhq/collector/integration"
)

// Name is the integration's name in its logs and manifest.
const Name = "ldap"

// adCapability is LDAP_CAP_ACTIVE_DIRECTORY_OID, in an AD domain
// controller's root DSE supportedCapabilities.
const adCapability = "1.2.840.113556.1.4.800"

// Run collects the directory (an integration.RunFunc).
func Run(ctx context.Context, raw []byte, out *integration.Emitter, log *slog.Logger) error {
	c, err := parseConfig(raw)
	if err != nil {
		return err
	}
	s, err := open(ctx, c, log)
	if err != nil {
		return err
	}
	defer s.conn.Close()
	r := &run{searcher: s.searcher, cfg: c, out: out, log: log, ad: s.ad,
		ous: map[string]string{}, users: map[string]string{}, groups: map[string]string{}}
	for _, step := range []func(context.Context) error{r.collectOUs, r.collectUsers, r.collectComputers, r.collectGroups} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return r.finish()
}

// session is a bound connection and what the root DSE said.
type session struct {
	*searcher
	ad bool
}

// open connects (retrying what may pass: an unreachable server), binds,
// and reads the root DSE for the directory's kind and base DN.
func open(ctx context.Context, c *Config, log *slog.Logger) (*session, error) {
	var conn *ldap.Conn
	err := integration.Retry(ctx, integration.Backoff{Attempts: 3}, func(ctx context.Context) error {
		var err error
		if conn, err = connect(ctx, c, log); err != nil && !errors.Is(err, integration.ErrUnreachable) {
			return integration.Permanent(err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s := &session{searcher: &searcher{conn: conn, base: c.BaseDN, pageSize: uint32(c.PageSize)}}
	if err := s.readRootDSE(c); err != nil {
		conn.Close()
		return nil, err
	}
	log.Info("connected", "url", c.URL, "start_tls", c.StartTLS, "bind_dn", c.BindDN, "base_dn", s.base, "active_directory", s.ad)
	return s, nil
}

// readRootDSE decides whether the server is Active Directory and, when
// the config names no base DN, takes the server's.
func (s *session) readRootDSE(c *Config) error {
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
		[]string{"namingContexts", "defaultNamingContext", "supportedCapabilities"}, nil)
	res, err := s.conn.Search(req)
	if err != nil {
		return classify("read the root DSE", err)
	}
	var dse *ldap.Entry
	if len(res.Entries) == 1 {
		dse = res.Entries[0]
	} else {
		dse = ldap.NewEntry("", nil)
	}
	switch c.Directory {
	case DirectoryAD:
		s.ad = true
	case DirectoryAuto:
		s.ad = slices.Contains(dse.GetAttributeValues("supportedCapabilities"), adCapability)
	}
	if s.base == "" {
		s.base = first(dse, "defaultNamingContext", "namingContexts")
	}
	if s.base == "" {
		return fmt.Errorf("%w: base_dn: not set, and the server names no naming context", integration.ErrBadConfig)
	}
	return nil
}

// run is one collection: the keys of what it emitted, by normalised DN,
// for the relationships.
type run struct {
	*searcher
	cfg *Config
	out *integration.Emitter
	log *slog.Logger
	ad  bool

	ous, users, groups map[string]string // normalised DN → key
	// nested are memberships of a group in a group not seen yet.
	nested  []membership
	counts  map[string]int
	unknown int // member DNs that are none of the users and groups
}

type membership struct{ parent, childDN string }

func (r *run) count(what string) {
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[what]++
}

// filter is the kind's filter: the config's, or the directory's default.
func (r *run) filter(k kind, override string) string {
	switch {
	case override != "":
		return override
	case r.ad:
		return k.ad
	}
	return k.generic
}

func (r *run) attrs(k kind) []string { return append(slices.Clone(k.attrs), idAttrs...) }

func (r *run) collectOUs(ctx context.Context) error {
	return r.each(ctx, r.filter(kindOU, r.cfg.OUFilter), r.attrs(kindOU), func(e *ldap.Entry) error {
		k := key(TypeOU, e)
		r.ous[normDN(e.DN)] = k
		r.count(TypeOU)
		return r.out.Entity(k, TypeOU, kindOU.class, ouProps(e)...)
	})
}

func (r *run) collectUsers(ctx context.Context) error {
	return r.each(ctx, r.filter(kindUser, r.cfg.UserFilter), r.attrs(kindUser), func(e *ldap.Entry) error {
		k := key(TypeUser, e)
		r.users[normDN(e.DN)] = k
		r.count(TypeUser)
		if err := r.out.Entity(k, TypeUser, kindUser.class, userProps(e, r.ad)...); err != nil {
			return err
		}
		return r.inOU(e.DN, k, TypeOUHasUser)
	})
}

func (r *run) collectComputers(ctx context.Context) error {
	return r.each(ctx, r.filter(kindComputer, r.cfg.ComputerFilter), r.attrs(kindComputer), func(e *ldap.Entry) error {
		k := key(TypeComputer, e)
		r.count(TypeComputer)
		if err := r.out.Entity(k, TypeComputer, kindComputer.class, computerProps(e, r.ad)...); err != nil {
			return err
		}
		return r.inOU(e.DN, k, TypeOUHasComputer)
	})
}

// inOU emits OU HAS entry when the entry's parent is a collected OU.
func (r *run) inOU(dn, k, typ string) error {
	ou, ok := r.ous[parentDN(dn)]
	if !ok {
		return nil
	}
	r.count(typ)
	return r.out.Relationship(ou+"|HAS|"+k, typ, "HAS", ou, k)
}

// collectGroups emits the groups and their memberships: a member that is
// a user is MEMBER_OF the group; one that is a group is CONTAINed by it
// (resolved at the end when it comes later).
func (r *run) collectGroups(ctx context.Context) error {
	return r.eachPaged(ctx, r.filter(kindGroup, r.cfg.GroupFilter), r.attrs(kindGroup), min(r.pageSize, groupPageSize), func(e *ldap.Entry) error {
		k := key(TypeGroup, e)
		r.groups[normDN(e.DN)] = k
		r.count(TypeGroup)
		if err := r.out.Entity(k, TypeGroup, kindGroup.class, groupProps(e, r.ad)...); err != nil {
			return err
		}
		members, err := r.rangedValues(ctx, e, "member")
		if err != nil {
			return err
		}
		members = append(members, e.GetEqualFoldAttributeValues("uniqueMember")...)
		for _, m := range members {
			if err := r.member(k, m); err != nil {
				return err
			}
		}
		return nil
	})
}

// member emits one membership of the group with key parent.
func (r *run) member(parent, memberDN string) error {
	dn := normDN(memberDN)
	if u, ok := r.users[dn]; ok {
		r.count(TypeUserMemberOfGroup)
		return r.out.Relationship(u+"|MEMBER_OF|"+parent, TypeUserMemberOfGroup, "MEMBER_OF", u, parent)
	}
	if g, ok := r.groups[dn]; ok {
		return r.contains(parent, g)
	}
	r.nested = append(r.nested, membership{parent: parent, childDN: dn})
	return nil
}

func (r *run) contains(parent, child string) error {
	r.count(TypeGroupHasGroup)
	return r.out.Relationship(parent+"|CONTAINS|"+child, TypeGroupHasGroup, "CONTAINS", parent, child)
}

// finish resolves the memberships of groups seen after their parents,
// and logs what the run collected.
func (r *run) finish() error {
	for _, m := range r.nested {
		g, ok := r.groups[m.childDN]
		if !ok {
			r.unknown++
			continue
		}
		if err := r.contains(m.parent, g); err != nil {
			return err
		}
	}
	args := []any{"records", r.out.Count(), "active_directory", r.ad, "members_not_collected", r.unknown}
	for _, t := range []string{TypeUser, TypeGroup, TypeOU, TypeComputer, TypeUserMemberOfGroup, TypeGroupHasGroup, TypeOUHasUser, TypeOUHasComputer} {
		args = append(args, t, r.counts[t])
	}
	r.log.Info("directory collected", args...)
	return nil
}
