package browsertest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/collectorhq/collector/internal/env"
)

// Page drives a tab through a site's pages as a person would: open a
// path, fill a form, click, wait for the next page, read what it shows.
type Page struct {
	*Tab
	// Base is the site's URL (scheme and host).
	Base string
}

// OnSite is a page on the site at base in tab.
func OnSite(tab *Tab, base string) *Page { return &Page{Tab: tab, Base: strings.TrimSuffix(base, "/")} }

// Load runs trigger (a navigation, a click that submits) and waits for
// the page it leads to.
func (p *Page) Load(trigger chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if _, err := TryRun(p.Tab, chromedp.WaitEvent(page.LoadEventFired, nil, trigger)); err != nil {
		p.t.Fatalf("%v (at %s)", err, p.Path())
	}
}

// Open loads path.
func (p *Page) Open(path string) { p.t.Helper(); p.Load(chromedp.Navigate(p.Base + path)) }

// Path is the page's path and query.
func (p *Page) Path() string {
	v, _ := TryRun(p.Tab, chromedp.Evaluate[string](`location.pathname + location.search`))
	return v
}

// Text is the text of the first element matching css ("" if none).
func (p *Page) Text(css string) string {
	p.t.Helper()
	q, _ := json.Marshal(css)
	return Run(p.Tab, chromedp.Evaluate[string](`(e => e ? e.textContent : "")(document.querySelector(`+string(q)+`))`))
}

// Has says whether an element matches css.
func (p *Page) Has(css string) bool {
	p.t.Helper()
	q, _ := json.Marshal(css)
	return Run(p.Tab, chromedp.Evaluate[bool](`document.querySelector(`+string(q)+`) !== null`))
}

// Source is the document as the browser has it now (after scripts).
func (p *Page) Source() string {
	p.t.Helper()
	return Run(p.Tab, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
}

// Fill sets the value of the field matching css, as typing would (an
// input event follows).
func (p *Page) Fill(css, value string) {
	p.t.Helper()
	q, _ := json.Marshal(css)
	v, _ := json.Marshal(value)
	ok := Run(p.Tab, chromedp.Evaluate[bool](`(e => { if (!e) return false; e.focus(); e.value = `+string(v)+
		`; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true })(document.querySelector(`+string(q)+`))`))
	if !ok {
		p.t.Fatalf("no field %s at %s", css, p.Path())
	}
}

// Select chooses the option of value in the select matching css.
func (p *Page) Select(css, value string) {
	p.t.Helper()
	p.Fill(css, value)
	q, _ := json.Marshal(css)
	if got := Run(p.Tab, chromedp.Evaluate[string](`document.querySelector(`+string(q)+`).value`)); got != value {
		p.t.Fatalf("select %s at %s has no option %q", css, p.Path(), value)
	}
}

// Submit clicks the button matching css and waits for the next page.
func (p *Page) Submit(css string) { p.t.Helper(); p.Load(chromedp.Click(chromedp.CSS(css))) }

// WaitText waits until the element matching css contains want, or fails
// after within.
func (p *Page) WaitText(css, want string, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	q, _ := json.Marshal(css)
	for {
		// The page may be between two documents (a reload): try again.
		got, err := TryRun(p.Tab, chromedp.Evaluate[string](`(e => e ? e.textContent : "")(document.querySelector(`+string(q)+`))`))
		if err == nil && strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s at %s shows %q, not %q, after %v", css, p.Path(), got, want, within)
		}
		time.Sleep(100 * time.Millisecond) // polling the page, with a deadline
	}
}

// WaitGone waits until no element matches css (a reload may come
// between), or fails after within.
func (p *Page) WaitGone(css string, within time.Duration) {
	p.t.Helper()
	q, _ := json.Marshal(css)
	for deadline := time.Now().Add(within); ; {
		gone, err := TryRun(p.Tab, chromedp.Evaluate[bool](`document.readyState === "complete" && document.querySelector(`+string(q)+`) === null`))
		if err == nil && gone {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s still at %s after %v", css, p.Path(), within)
		}
		time.Sleep(100 * time.Millisecond) // polling the page, with a deadline
	}
}

// AxeViolation is one rule axe-core found broken on a page.
type AxeViolation struct {
	ID, Impact, Help string
	Nodes            int
}

func (v AxeViolation) String() string {
	return fmt.Sprintf("%s (%s, %d elements): %s", v.ID, v.Impact, v.Nodes, v.Help)
}

// axeSource is axe-core as `make npm-deps` installed it from the npm
// registry (packaging/npm/package-lock.json pins its version and hash).
func axeSource() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", ".cache", "npm", "axe-core", "axe.min.js")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("axe-core is not installed (%v): run `make npm-deps`", err)
	}
	return string(b), nil
}

// Axe runs axe-core in the page and returns the violations of impact
// "critical" or "serious". Without axe-core installed it skips the test
// (fails it under CI=true).
func (p *Page) Axe() []AxeViolation {
	p.t.Helper()
	src, err := axeSource()
	if err != nil {
		if env.InCI() {
			p.t.Fatal(err)
		}
		p.t.Skip(err)
	}
	// DevTools evaluation is not the page's script: the page's CSP (no
	// inline script) does not apply to it.
	Run(p.Tab, chromedp.Evaluate[bool](src+"\n;true"))
	res := Run(p.Tab, chromedp.Evaluate[[]map[string]any](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.length})))`, chromedp.EvalAwaitPromise))
	var out []AxeViolation
	for _, v := range res {
		impact, _ := v["impact"].(string)
		if impact != "critical" && impact != "serious" {
			continue
		}
		n, _ := v["nodes"].(float64)
		id, _ := v["id"].(string)
		help, _ := v["help"].(string)
		out = append(out, AxeViolation{ID: id, Impact: impact, Help: help, Nodes: int(n)})
	}
	return out
}
