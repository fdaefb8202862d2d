package ldap

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/collectorhq/collector/integration"
)

// Entity types and classes.
const (
	TypeUser     = "ldap_user"
	TypeGroup    = "ldap_group"
	TypeOU       = "ldap_ou"
	TypeComputer = "ldap_computer"

	TypeUserMemberOfGroup = "ldap_user_member_of_ldap_group"
	TypeGroupHasGroup     = "ldap_group_contains_ldap_group"
	TypeOUHasUser         = "ldap_ou_has_ldap_user"
	TypeOUHasComputer     = "ldap_ou_has_ldap_computer"
)

// kind is one of the four kinds of entry collected.
type kind struct {
	typ, class string
	// filters by directory: generic, Active Directory.
	generic, ad string
	attrs       []string
}

var (
	kindOU = kind{typ: TypeOU, class: "OrganizationalUnit",
		generic: "(objectClass=organizationalUnit)", ad: "(objectClass=organizationalUnit)",
		attrs: []string{"ou", "description"}}
	kindUser = kind{typ: TypeUser, class: "User",
		generic: "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))", ad: "(&(objectCategory=person)(objectClass=user))",
		attrs: []string{"uid", "cn", "sn", "givenName", "displayName", "mail", "title", "departmentNumber", "department", "employeeNumber",
			"sAMAccountName", "userPrincipalName", "userAccountControl", "msDS-User-Account-Control-Computed", "lastLogonTimestamp",
			"pwdLastSet", "accountExpires", "lockoutTime", "whenCreated", "pwdAccountLockedTime", "createTimestamp"}}
	kindGroup = kind{typ: TypeGroup, class: "UserGroup",
		generic: "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))", ad: "(objectClass=group)",
		attrs: []string{"cn", "description", "mail", "groupType", "sAMAccountName", "member", "uniqueMember"}}
	kindComputer = kind{typ: TypeComputer, class: "Device",
		generic: "(objectClass=device)", ad: "(objectClass=computer)",
		attrs: []string{"cn", "description", "serialNumber", "dNSHostName", "operatingSystem", "operatingSystemVersion",
			"userAccountControl", "lastLogonTimestamp", "sAMAccountName", "whenCreated", "createTimestamp"}}
)

// idAttrs are the identity attributes requested with every kind.
var idAttrs = []string{"entryUUID", "objectSid", "objectGUID"}

// userAccountControl flags (MS-ADTS 2.2.16).
const (
	uacAccountDisable      = 0x2
	uacLockout             = 0x10
	uacNormalAccount       = 0x200
	uacWorkstationTrust    = 0x1000
	uacDontExpirePassword  = 0x10000
	uacSmartcardRequired   = 0x40000
	uacTrustedForDelegaton = 0x80000
	uacPasswordExpired     = 0x800000
)

// key is an entry's stable key: objectSid in Active Directory (objectGUID
// where there is no SID, as on OUs), entryUUID elsewhere, and the
// normalised DN only when the server gives neither.
func key(typ string, e *ldap.Entry) string {
	if sid := e.GetRawAttributeValue("objectSid"); len(sid) > 0 {
		if s, err := SIDString(sid); err == nil {
			return typ + ":" + s
		}
	}
	if g := e.GetRawAttributeValue("objectGUID"); len(g) == 16 {
		return typ + ":" + GUIDString(g)
	}
	if u := e.GetAttributeValue("entryUUID"); u != "" {
		return typ + ":" + strings.ToLower(u)
	}
	return typ + ":dn:" + normDN(e.DN)
}

// SIDString is the text form (S-1-5-21-...) of a binary objectSid
// (MS-DTYP 2.4.2.2): revision, sub-authority count, a 48-bit big-endian
// authority, then little-endian 32-bit sub-authorities.
func SIDString(b []byte) (string, error) {
	if len(b) < 8 || b[0] != 1 || len(b) != 8+4*int(b[1]) {
		return "", fmt.Errorf("objectSid: %d bytes is not a SID", len(b))
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	var sb strings.Builder
	sb.WriteString("S-1-")
	sb.WriteString(strconv.FormatUint(auth, 10))
	for i := range int(b[1]) {
		sb.WriteByte('-')
		sb.WriteString(strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[8+4*i:])), 10))
	}
	return sb.String(), nil
}

// GUIDString is the text form of a binary objectGUID: its first three
// fields little-endian, as Windows prints it.
func GUIDString(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// FileTime converts an AD timestamp (100 ns intervals since 1601-01-01
// UTC, as text) to a time; 0 and the maximum mean never (ok false).
func FileTime(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n == 1<<63-1 {
		return time.Time{}, false
	}
	const epochDiff = 116444736000000000 // 1601 to 1970, in 100 ns
	return time.Unix(0, (n-epochDiff)*100).UTC(), true
}

// generalizedTime reads an LDAP GeneralizedTime (20240131120000Z,
// 20240131120000.0Z).
func generalizedTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := ber.ParseGeneralizedTime([]byte(s))
	return t.UTC(), err == nil
}

// normDN is a DN in a form that compares as LDAP compares DNs for the
// attributes used in names: attribute types and values case-folded,
// spaces around separators dropped. A DN without escapes, quotes or
// multi-valued RDNs (nearly all) takes a fast path; the rest go through
// the LDAP library's parser.
func normDN(dn string) string {
	if strings.ContainsAny(dn, `\"+#;<>`) {
		return parsedNormDN(dn)
	}
	var sb strings.Builder
	sb.Grow(len(dn))
	for i, rdn := range strings.Split(dn, ",") {
		typ, val, ok := strings.Cut(rdn, "=")
		if !ok {
			return parsedNormDN(dn)
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strings.ToLower(strings.TrimSpace(typ)))
		sb.WriteByte('=')
		sb.WriteString(strings.ToLower(strings.TrimSpace(val)))
	}
	return sb.String()
}

// parsedNormDN is normDN through the LDAP library's DN parser.
func parsedNormDN(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(dn))
	}
	var sb strings.Builder
	for i, rdn := range d.RDNs {
		if i > 0 {
			sb.WriteByte(',')
		}
		for j, a := range rdn.Attributes {
			if j > 0 {
				sb.WriteByte('+')
			}
			sb.WriteString(strings.ToLower(a.Type))
			sb.WriteByte('=')
			sb.WriteString(strings.ToLower(a.Value))
		}
	}
	return sb.String()
}

// parentDN is the normalised DN of an entry's parent ("" at the top).
func parentDN(dn string) string {
	n := normDN(dn)
	if strings.ContainsAny(dn, `\"+#;<>`) {
		d, err := ldap.ParseDN(dn)
		if err != nil || len(d.RDNs) < 2 {
			return ""
		}
		d.RDNs = d.RDNs[1:]
		return parsedNormDN(d.String())
	}
	_, parent, ok := strings.Cut(n, ",")
	if !ok {
		return ""
	}
	return parent
}

// props accumulates an entity's properties, skipping empty values.
type props []integration.Prop

func (p *props) str(name, v string) {
	if v != "" {
		*p = append(*p, integration.String(name, v))
	}
}

func (p *props) time(name string, t time.Time, ok bool) {
	if ok {
		*p = append(*p, integration.String(name, t.Format(time.RFC3339)))
	}
}

func (p *props) boolean(name string, v bool) { *p = append(*p, integration.Bool(name, v)) }

func (p *props) int(name string, v int64) { *p = append(*p, integration.Int(name, v)) }

// first returns the first non-empty value among the attributes.
func first(e *ldap.Entry, attrs ...string) string {
	for _, a := range attrs {
		if v := e.GetEqualFoldAttributeValue(a); v != "" {
			return v
		}
	}
	return ""
}

// common are the properties of every kind.
func common(e *ldap.Entry) props {
	p := props{integration.String("dn", e.DN)}
	if sid := e.GetRawAttributeValue("objectSid"); len(sid) > 0 {
		if s, err := SIDString(sid); err == nil {
			p.str("sid", s)
		}
	}
	if g := e.GetRawAttributeValue("objectGUID"); len(g) == 16 {
		p.str("guid", GUIDString(g))
	}
	p.str("entryUUID", strings.ToLower(e.GetAttributeValue("entryUUID")))
	t, ok := generalizedTime(first(e, "whenCreated", "createTimestamp"))
	p.time("createdOn", t, ok)
	p.str("description", e.GetAttributeValue("description"))
	return p
}

// userProps are a user's properties; ad maps Active Directory's encodings.
func userProps(e *ldap.Entry, ad bool) props {
	p := common(e)
	username := first(e, "sAMAccountName", "uid")
	p.str("username", username)
	p.str("name", first(e, "displayName", "cn", "uid", "sAMAccountName"))
	p.str("displayName", first(e, "displayName", "cn"))
	p.str("email", e.GetAttributeValue("mail"))
	p.str("firstName", e.GetAttributeValue("givenName"))
	p.str("lastName", e.GetAttributeValue("sn"))
	p.str("title", e.GetAttributeValue("title"))
	p.str("department", first(e, "department", "departmentNumber"))
	p.str("employeeNumber", e.GetAttributeValue("employeeNumber"))
	p.str("userPrincipalName", e.GetAttributeValue("userPrincipalName"))
	if ad {
		adAccount(&p, e)
		return p
	}
	// Generic LDAP: the password policy overlay's lock.
	locked := e.GetAttributeValue("pwdAccountLockedTime") != ""
	p.boolean("locked", locked)
	p.boolean("active", !locked)
	return p
}

// adAccount maps userAccountControl and AD's account timestamps.
func adAccount(p *props, e *ldap.Entry) {
	uac, err := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	if err == nil {
		// AD does not keep the lockout bit of userAccountControl up to
		// date; the constructed attribute has the live state.
		computed, cerr := strconv.ParseInt(e.GetAttributeValue("msDS-User-Account-Control-Computed"), 10, 64)
		locked := uac&uacLockout != 0
		if cerr == nil {
			locked = computed&uacLockout != 0
		}
		enabled := uac&uacAccountDisable == 0
		p.int("userAccountControl", uac)
		p.boolean("enabled", enabled)
		p.boolean("active", enabled && !locked)
		p.boolean("locked", locked)
		p.boolean("passwordNeverExpires", uac&uacDontExpirePassword != 0)
		p.boolean("passwordExpired", uac&uacPasswordExpired != 0 || (cerr == nil && computed&uacPasswordExpired != 0))
		p.boolean("smartcardRequired", uac&uacSmartcardRequired != 0)
		p.boolean("trustedForDelegation", uac&uacTrustedForDelegaton != 0)
	}
	t, ok := FileTime(e.GetAttributeValue("lastLogonTimestamp"))
	p.time("lastLogon", t, ok)
	if pls := e.GetAttributeValue("pwdLastSet"); pls != "" {
		t, ok := FileTime(pls)
		p.time("passwordLastSet", t, ok)
		p.boolean("mustChangePassword", pls == "0")
	}
	if ae := e.GetAttributeValue("accountExpires"); ae != "" {
		t, ok := FileTime(ae)
		p.time("accountExpires", t, ok)
		p.boolean("accountExpired", ok && t.Before(time.Now()))
	}
}

// groupProps are a group's properties.
func groupProps(e *ldap.Entry, ad bool) props {
	p := common(e)
	p.str("name", first(e, "cn", "sAMAccountName"))
	p.str("email", e.GetAttributeValue("mail"))
	if gt, err := strconv.ParseInt(e.GetAttributeValue("groupType"), 10, 64); ad && err == nil {
		p.int("groupType", gt)
		p.boolean("security", gt&0x80000000 != 0)
		p.str("scope", groupScope(gt))
	}
	return p
}

func groupScope(gt int64) string {
	switch {
	case gt&0x2 != 0:
		return "global"
	case gt&0x4 != 0:
		return "domain_local"
	case gt&0x8 != 0:
		return "universal"
	case gt&0x1 != 0:
		return "builtin"
	}
	return ""
}

// ouProps are an organizational unit's properties.
func ouProps(e *ldap.Entry) props {
	p := common(e)
	p.str("name", e.GetAttributeValue("ou"))
	return p
}

// computerProps are a computer's properties.
func computerProps(e *ldap.Entry, ad bool) props {
	p := common(e)
	p.str("name", first(e, "cn", "sAMAccountName"))
	p.str("hostname", e.GetAttributeValue("dNSHostName"))
	p.str("operatingSystem", e.GetAttributeValue("operatingSystem"))
	p.str("operatingSystemVersion", e.GetAttributeValue("operatingSystemVersion"))
	p.str("serialNumber", e.GetAttributeValue("serialNumber"))
	if ad {
		if uac, err := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64); err == nil {
			p.int("userAccountControl", uac)
			p.boolean("enabled", uac&uacAccountDisable == 0)
		}
		t, ok := FileTime(e.GetAttributeValue("lastLogonTimestamp"))
		p.time("lastLogon", t, ok)
	}
	return p
}
