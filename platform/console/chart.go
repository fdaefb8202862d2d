package console

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/collectorhq/collector/internal/units"
)

// Charts are SVG drawn here, in Go: no script, no library, no inline
// style (the CSP allows presentation attributes, which are not styles),
// readable without colour (a title and the axis values are text).

// Point is one value of a series at a time or, for per-run charts, at an
// index.
type Point struct {
	At time.Time
	V  float64
	// Gap: no data here (the line breaks).
	Gap bool
}

const (
	chartW, chartH         = 640, 150
	padL, padR, padT, padB = 64, 12, 20, 26
)

// Format renders a value for an axis: bytes, a count, a duration in
// seconds.
type Format func(float64) string

// Bytes, Count and Seconds are the axis formats.
var (
	Bytes   Format = func(v float64) string { return units.Bytes(int64(v)) }
	Count   Format = func(v float64) string { return fmt.Sprintf("%.0f", v) }
	Seconds Format = func(v float64) string {
		return (time.Duration(v * float64(time.Second))).Round(100 * time.Millisecond).String()
	}
)

// TimeChart draws points over [from, to] as a line.
func TimeChart(title string, f Format, from, to time.Time, pts []Point) template.HTML {
	span := to.Sub(from).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(p Point, _ int) float64 {
		return padL + (chartW-padL-padR)*p.At.Sub(from).Seconds()/span
	}
	labels := [2]string{from.UTC().Format("Jan 2 15:04"), to.UTC().Format("Jan 2 15:04 UTC")}
	return draw(title, f, pts, x, labels, false)
}

// RunChart draws one bar per run, oldest first.
func RunChart(title string, f Format, pts []Point) template.HTML {
	n := float64(len(pts))
	x := func(_ Point, i int) float64 {
		return padL + (chartW-padL-padR)*(float64(i)+0.5)/math.Max(n, 1)
	}
	labels := [2]string{"oldest", "latest run"}
	return draw(title, f, pts, x, labels, true)
}

func draw(title string, f Format, pts []Point, x func(Point, int) float64, labels [2]string, bars bool) template.HTML {
	maxV := 0.0
	for _, p := range pts {
		if !p.Gap && p.V > maxV {
			maxV = p.V
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	y := func(v float64) float64 { return chartH - padB - (chartH-padT-padB)*v/maxV }
	var b strings.Builder
	t := html.EscapeString(title)
	fmt.Fprintf(&b, `<figure class="chart"><svg viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH, t)
	fmt.Fprintf(&b, `<title>%s</title>`, t)
	// Axes and the top and bottom values.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d0d7de"/>`, padL, chartH-padB, chartW-padR, chartH-padB)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d0d7de" stroke-dasharray="3 3"/>`, padL, padT, chartW-padR, padT)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#57606a">%s</text>`, padL-6, padT+4, html.EscapeString(f(maxV)))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#57606a">0</text>`, padL-6, chartH-padB+4)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="#57606a">%s</text>`, padL, chartH-6, html.EscapeString(labels[0]))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#57606a">%s</text>`, chartW-padR, chartH-6, html.EscapeString(labels[1]))
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" text-anchor="middle" fill="#57606a">no data</text>`, (chartW+padL)/2, chartH/2)
	}
	if bars {
		w := math.Max(1, (chartW-padL-padR)/math.Max(float64(len(pts)), 1)*0.7)
		for i, p := range pts {
			if p.Gap {
				continue
			}
			cx, top := x(p, i), y(p.V)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#0b5cad"><title>%s</title></rect>`,
				cx-w/2, top, w, float64(chartH-padB)-top, html.EscapeString(f(p.V)))
		}
	} else {
		var line []string
		flush := func() {
			if len(line) == 1 { // one point: a dot, a line of one point is invisible
				x, y, _ := strings.Cut(line[0], ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="#0b5cad"/>`, x, y)
				line = nil
			}
			if len(line) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="#0b5cad" stroke-width="2" points="%s"/>`, strings.Join(line, " "))
				line = nil
			}
		}
		for i, p := range pts {
			if p.Gap {
				flush()
				continue
			}
			line = append(line, fmt.Sprintf("%.1f,%.1f", x(p, i), y(p.V)))
		}
		flush()
	}
	b.WriteString(`</svg><figcaption>` + t + `</figcaption></figure>`)
	return template.HTML(b.String())
}
