package console

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// wellFormed parses the chart as XML: an unescaped title or value would
// break it.
func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
	}
}

func TestChartsEscapeAndDraw(t *testing.T) {
	from := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	pts := []Point{{At: from, V: 1 << 30}, {At: from.Add(time.Hour), V: 2 << 30}, {Gap: true}, {At: to, V: 0}}
	svg := string(TimeChart(`free <script>alert(1)</script> & "memory"`, Bytes, from, to, pts))
	wellFormed(t, svg)
	for _, bad := range []string{"<script>", "style="} {
		if strings.Contains(svg, bad) {
			t.Errorf("chart contains %q:\n%s", bad, svg)
		}
	}
	// Broken at the gap: a line of two points, then a dot; the top value
	// labelled.
	if n, d := strings.Count(svg, "<polyline"), strings.Count(svg, "<circle"); n != 1 || d != 1 {
		t.Errorf("polylines = %d, dots = %d, want 1 and 1 (broken at the gap)", n, d)
	}
	if !strings.Contains(svg, "2.0 GiB") {
		t.Errorf("chart does not label its top value (2.0 GiB):\n%s", svg)
	}

	one := string(TimeChart("one beat", Count, from, to, []Point{{At: from.Add(time.Hour), V: 3}}))
	wellFormed(t, one)
	if !strings.Contains(one, "<circle") {
		t.Errorf("a series of one point draws nothing visible:\n%s", one)
	}

	runs := string(RunChart("records per run", Count, []Point{{V: 3}, {V: 10}, {V: 7}}))
	wellFormed(t, runs)
	if n := strings.Count(runs, "<rect"); n != 3 {
		t.Errorf("bars = %d, want 3", n)
	}
	empty := string(RunChart("nothing", Seconds, nil))
	wellFormed(t, empty)
	if !strings.Contains(empty, "no data") {
		t.Error("an empty chart does not say it has no data")
	}
}
