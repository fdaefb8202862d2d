package console

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/collectorhq/collector/internal/units"
	"github.com/collectorhq/collector/platform/access"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	// when renders a time: UTC in the page, the user's time zone once
	// time.js runs, the UTC value on hover.
	"when": func(v any) template.HTML {
		var t time.Time
		switch x := v.(type) {
		case time.Time:
			t = x
		case *time.Time:
			if x == nil {
				return "–"
			}
			t = *x
		}
		if t.IsZero() {
			return "–"
		}
		u := t.UTC()
		return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`,
			u.Format(time.RFC3339), u.Format("2006-01-02 15:04:05 UTC"), u.Format("2006-01-02 15:04 UTC")))
	},
	"clockOffset": func(ms int64) string { return units.ClockOffset(time.Duration(ms) * time.Millisecond) },
	"bytes": func(n int64) string {
		if n <= 0 {
			return "–"
		}
		return units.Bytes(n)
	},
	"dur": func(a, b any) string {
		from, to := asTime(a), asTime(b)
		if from.IsZero() || to.IsZero() {
			return "–"
		}
		return to.Sub(from).Round(100 * time.Millisecond).String()
	},
	// can says whether the page's role may do what perm names.
	"can": func(role access.Role, perm string) bool { return access.Allows(role, access.Permission(perm)) },
	// link returns base with its query's key set to value (page links
	// keep the filters).
	"link": func(base *url.URL, kv ...string) string {
		u := *base
		q := u.Query()
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				q.Del(kv[i])
			} else {
				q.Set(kv[i], kv[i+1])
			}
		}
		u.RawQuery = q.Encode()
		return u.RequestURI()
	},
	"join":  strings.Join,
	"lower": strings.ToLower,
}

func asTime(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x
	case *time.Time:
		if x != nil {
			return *x
		}
	}
	return time.Time{}
}

// Render writes the page name with data for the principal: for the
// platform's data pages.
func (c *Console) Render(w http.ResponseWriter, status int, name string, pr *access.Principal, p *Page) {
	c.render(w, status, name, withUser(p, pr))
}
