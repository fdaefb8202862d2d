package ldap

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/collectorhq/collector/integration"
)

// sid builds a binary objectSid: S-1-5-21-a-b-c-rid.
func sid(subs ...uint32) []byte {
	b := []byte{1, byte(len(subs)), 0, 0, 0, 0, 0, 5}
	for _, s := range subs {
		b = binary.LittleEndian.AppendUint32(b, s)
	}
	return b
}

// fileTime is t as AD writes it.
func fileTime(t time.Time) string { return strconv.FormatInt(t.UnixNano()/100+116444736000000000, 10) }

// adEntry is an entry shaped like one from an AD domain controller: binary
// objectSid and objectGUID, numeric flags and FILETIME timestamps.
func adEntry(dn string, attrs map[string][]string, raw map[string][]byte) *ldap.Entry {
	e := ldap.NewEntry(dn, attrs)
	for name, v := range raw {
		e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: name, Values: []string{string(v)}, ByteValues: [][]byte{v}})
	}
	return e
}

func propsOf(t *testing.T, p props) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	e := integration.NewEmitter(&buf)
	if err := e.Entity("k", "t", "c", p...); err != nil {
		t.Fatal(err)
	}
	e.Flush()
	r, err := integration.ParseRecord(bytes.TrimSpace(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(r.Body, &m)
	return m
}

func TestSIDAndGUID(t *testing.T) {
	got, err := SIDString(sid(21, 1004336348, 1177238915, 682003330, 512))
	if err != nil || got != "S-1-5-21-1004336348-1177238915-682003330-512" {
		t.Errorf("SIDString = %q, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0, 0, 0, 0, 0, 0, 5}, append(sid(21, 1), 0)} {
		if _, err := SIDString(bad); err == nil {
			t.Errorf("SIDString(%x) accepted", bad)
		}
	}
	// objectGUID {3f2504e0-4f89-11d3-9a0c-0305e82c3301} as AD stores it.
	g := []byte{0xe0, 0x04, 0x25, 0x3f, 0x89, 0x4f, 0xd3, 0x11, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01}
	if s := GUIDString(g); s != "3f2504e0-4f89-11d3-9a0c-0305e82c3301" {
		t.Errorf("GUIDString = %s", s)
	}
}

func TestFileTime(t *testing.T) {
	want := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	if got, ok := FileTime(fileTime(want)); !ok || !got.Equal(want) {
		t.Errorf("FileTime = %v, %v; want %v", got, ok, want)
	}
	if got, ok := FileTime("133537278000000000"); !ok || got.Year() != 2024 {
		t.Errorf("FileTime(a 2024 value) = %v", got)
	}
	for _, never := range []string{"0", "9223372036854775807", "", "x", "-5"} {
		if _, ok := FileTime(never); ok {
			t.Errorf("FileTime(%q) is a time, want never", never)
		}
	}
}

func TestADUserMapping(t *testing.T) {
	lastLogon := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	pwdSet := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	userSID := sid(21, 111, 222, 333, 1105)
	cases := []struct {
		name  string
		attrs map[string][]string
		want  map[string]any
	}{
		{"enabled, password never expires",
			map[string][]string{"userAccountControl": {"66048"}, "lastLogonTimestamp": {fileTime(lastLogon)}, "pwdLastSet": {fileTime(pwdSet)}, "accountExpires": {"9223372036854775807"}},
			map[string]any{"enabled": true, "active": true, "locked": false, "passwordNeverExpires": true, "lastLogon": "2025-01-02T03:04:05Z",
				"passwordLastSet": "2024-06-01T00:00:00Z", "mustChangePassword": false, "userAccountControl": 66048.0}},
		{"disabled",
			map[string][]string{"userAccountControl": {"514"}, "lastLogonTimestamp": {"0"}},
			map[string]any{"enabled": false, "active": false, "passwordNeverExpires": false}},
		{"locked by the computed attribute, must change password",
			map[string][]string{"userAccountControl": {"512"}, "msDS-User-Account-Control-Computed": {"16"}, "pwdLastSet": {"0"}},
			map[string]any{"enabled": true, "active": false, "locked": true, "mustChangePassword": true}},
		{"stale lockout bit cleared by the computed attribute",
			map[string][]string{"userAccountControl": {"528"}, "msDS-User-Account-Control-Computed": {"0"}},
			map[string]any{"locked": false, "active": true}},
		{"password expired, smartcard",
			map[string][]string{"userAccountControl": {"8651264"}},
			map[string]any{"passwordExpired": true, "smartcardRequired": true}},
	}
	for _, c := range cases {
		attrs := map[string][]string{"sAMAccountName": {"jdoe"}, "userPrincipalName": {"jdoe@corp.example"}, "displayName": {"Jane Doe"},
			"mail": {"jdoe@corp.example"}, "whenCreated": {"20230115083000.0Z"}}
		for k, v := range c.attrs {
			attrs[k] = v
		}
		e := adEntry("CN=Jane Doe,OU=Staff,DC=corp,DC=example", attrs, map[string][]byte{"objectSid": userSID, "objectGUID": bytes.Repeat([]byte{0xab}, 16)})
		got := propsOf(t, userProps(e, true))
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", c.name, k, got[k], v)
			}
		}
		if got["username"] != "jdoe" || got["sid"] != "S-1-5-21-111-222-333-1105" || got["createdOn"] != "2023-01-15T08:30:00Z" || got["name"] != "Jane Doe" {
			t.Errorf("%s: identity properties %v", c.name, got)
		}
		if _, ok := got["lastLogon"]; ok && c.attrs["lastLogonTimestamp"] != nil && c.attrs["lastLogonTimestamp"][0] == "0" {
			t.Errorf("%s: lastLogon set for a user who never logged on", c.name)
		}
		if k := key(TypeUser, e); k != "ldap_user:S-1-5-21-111-222-333-1105" {
			t.Errorf("%s: key %q: want the objectSid", c.name, k)
		}
	}
}

func TestADGroupOUComputer(t *testing.T) {
	g := adEntry("CN=Admins,OU=Groups,DC=corp,DC=example", map[string][]string{"cn": {"Admins"}, "groupType": {"-2147483646"}},
		map[string][]byte{"objectSid": sid(21, 1, 2, 3, 512)})
	gp := propsOf(t, groupProps(g, true))
	if gp["security"] != true || gp["scope"] != "global" || key(TypeGroup, g) != "ldap_group:S-1-5-21-1-2-3-512" {
		t.Errorf("group %v, key %s", gp, key(TypeGroup, g))
	}
	// An OU has no SID: its objectGUID keys it.
	guid := []byte{0xe0, 0x04, 0x25, 0x3f, 0x89, 0x4f, 0xd3, 0x11, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01}
	ou := adEntry("OU=Staff,DC=corp,DC=example", map[string][]string{"ou": {"Staff"}}, map[string][]byte{"objectGUID": guid})
	if k := key(TypeOU, ou); k != "ldap_ou:3f2504e0-4f89-11d3-9a0c-0305e82c3301" {
		t.Errorf("OU key %s", k)
	}
	pc := adEntry("CN=WS01,OU=Staff,DC=corp,DC=example", map[string][]string{"cn": {"WS01"}, "dNSHostName": {"ws01.corp.example"},
		"operatingSystem": {"Windows 11 Enterprise"}, "userAccountControl": {"4098"}}, map[string][]byte{"objectSid": sid(21, 1, 2, 3, 2001)})
	cp := propsOf(t, computerProps(pc, true))
	if cp["hostname"] != "ws01.corp.example" || cp["enabled"] != false || cp["operatingSystem"] != "Windows 11 Enterprise" {
		t.Errorf("computer %v", cp)
	}
	if parentDN(pc.DN) != normDN("ou=staff, dc=CORP,dc=example") {
		t.Errorf("parentDN = %q", parentDN(pc.DN))
	}
}

func TestGenericKeysAndDN(t *testing.T) {
	e := ldap.NewEntry("uid=jdoe,ou=People,dc=example,dc=com", map[string][]string{"entryUUID": {"5F1C7B62-1D3A-103F-8E5B-2B6A1F6C9A10"}, "uid": {"jdoe"}, "cn": {"Jane"}})
	if k := key(TypeUser, e); k != "ldap_user:5f1c7b62-1d3a-103f-8e5b-2b6a1f6c9a10" {
		t.Errorf("key %s", k)
	}
	if k := key(TypeUser, ldap.NewEntry("uid=x,dc=a", nil)); k != "ldap_user:dn:uid=x,dc=a" {
		t.Errorf("key without an identity attribute %s", k)
	}
	if normDN("UID=jdoe, OU=People,dc=Example,dc=com") != normDN("uid=jdoe,ou=people,dc=example,dc=com") {
		t.Error("normDN does not fold case and spaces")
	}
	p := propsOf(t, userProps(e, false))
	if p["username"] != "jdoe" || p["active"] != true {
		t.Errorf("generic user %v", p)
	}
}

func TestRangedAttribute(t *testing.T) {
	e := ldap.NewEntry("cn=big", map[string][]string{"member;range=0-1499": {"a", "b"}})
	vals, next, ok := rangeOf(e, "member")
	if !ok || next != 1500 || len(vals) != 2 {
		t.Errorf("rangeOf = %v, %d, %v", vals, next, ok)
	}
	last := ldap.NewEntry("cn=big", map[string][]string{"member;range=1500-*": {"c"}})
	if _, next, ok := rangeOf(last, "member"); !ok || next != -1 {
		t.Errorf("last range: next %d, ok %v", next, ok)
	}
	if _, _, ok := rangeOf(ldap.NewEntry("cn=small", map[string][]string{"member": {"a"}}), "member"); ok {
		t.Error("a plain attribute read as ranged")
	}
}

func TestConfigChecks(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"url":"ldap://h","bind_dn":"cn=a","bind_password":"p"}`:                       "in clear",
		`{"url":"http://h","bind_dn":"cn=a","bind_password":"p"}`:                       "scheme",
		`{"url":"ldaps://h","start_tls":true,"bind_dn":"cn=a","bind_password":"p"}`:     "TLS already",
		`{"url":"ldaps://h","bind_dn":"cn=a"}`:                                          "bind_password",
		`{"url":"ldaps://h","bind_dn":"cn=a","bind_password":"p","ca_cert":"nope"}`:     "ca_cert",
		`{"url":"ldaps://h","bind_dn":"cn=a","bind_password":"p","directory":"novell"}`: "directory",
		`{"url":"ldaps://h","bind_dn":"cn=a","bind_password":"p","page_size":99999}`:    "page_size",
		`{"url":"ldaps://h","bind_dn":"cn=a","bind_password":"p","unknown":1}`:          "unknown field",
	} {
		_, err := parseConfig([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %s: %v, want an error with %q", cfg, err, want)
		}
	}
	c, err := parseConfig([]byte(`{"url":"ldap://h","start_tls":true,"bind_dn":"cn=a","bind_password":"p"}`))
	if err != nil || c.PageSize != DefaultPageSize || c.Directory != DirectoryAuto {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}

// The fast path of normDN agrees with the parser's on simple DNs, and
// escaped ones go through the parser.
func TestNormDNFastPathAgrees(t *testing.T) {
	for _, dn := range []string{"uid=user-000001,ou=ou-01,dc=example,dc=com", "CN=Jane Doe, OU=Staff ,DC=corp,DC=example",
		"cn=a", "OU=x y z,dc=Q"} {
		if fast, slow := normDN(dn), parsedNormDN(dn); fast != slow {
			t.Errorf("normDN(%q) = %q, the parser's %q", dn, fast, slow)
		}
	}
	if got := normDN(`CN=Doe\, Jane,OU=Staff,DC=corp`); got != `cn=doe, jane,ou=staff,dc=corp` {
		t.Errorf("escaped comma: %q", got)
	}
	if got := parentDN(`CN=Doe\, Jane,OU=Staff,DC=corp`); got != "ou=staff,dc=corp" {
		t.Errorf("parent of an escaped DN: %q", got)
	}
	if parentDN("dc=com") != "" || parentDN("uid=a,ou=B,dc=c") != "ou=b,dc=c" {
		t.Error("parentDN wrong")
	}
}
