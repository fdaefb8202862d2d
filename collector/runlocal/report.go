package runlocal

import (
	"fmt"
	"io"
	"sort"

	"github.com/collectorhq/collector/internal/termsafe"
)

// Print writes the result for people: the records by type, the refused
// lines, the validation's checks and how the run ended. What the image
// wrote is escaped for the terminal.
func (r *Result) Print(w io.Writer) {
	if m := r.Manifest; m != nil {
		fmt.Fprintf(w, "integration: %s %s (network %s, validation %v)\n", termsafe.String(m.Name), termsafe.String(m.Version), orDefault(m.Network), m.Validation)
	}
	for _, c := range r.Capped {
		fmt.Fprintf(w, "note: the manifest asks %s\n", c)
	}
	if v := r.Validation; v != nil {
		for _, c := range v.Checks {
			fmt.Fprintf(w, "  passed  %s: %s\n", termsafe.String(c.Name), termsafe.String(c.Detail))
		}
		if v.OK {
			fmt.Fprintln(w, "validation passed")
		} else {
			fmt.Fprintf(w, "validation FAILED (%s): %s\n", termsafe.String(v.Reason), termsafe.String(v.Error))
		}
	} else {
		fmt.Fprintf(w, "records: %d entities, %d relationships\n", r.Entities, r.Relationships)
		types := make([]string, 0, len(r.ByType))
		for t := range r.ByType {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			fmt.Fprintf(w, "  %-40s %d\n", termsafe.String(t), r.ByType[t])
		}
		if r.Refused > 0 {
			fmt.Fprintf(w, "refused: %d output line(s); the runner would fail this job (no complete sync)\n", r.Refused)
			for _, f := range r.Refusals {
				fmt.Fprintf(w, "  line %d: %s\n", f.Line, termsafe.String(f.Reason))
			}
			if r.Refused > int64(len(r.Refusals)) {
				fmt.Fprintf(w, "  ... and %d more\n", r.Refused-int64(len(r.Refusals)))
			}
		}
	}
	switch {
	case r.Error != "":
		fmt.Fprintf(w, "FAILED: %s\n", termsafe.String(r.Error))
	case r.ExitCode != 0:
		fmt.Fprintf(w, "FAILED: the integration exited with code %d (%s)\n", r.ExitCode, r.Reason)
	case r.OK():
		fmt.Fprintf(w, "ok: exit 0 in %v", r.Duration.Round(1e6))
		if r.Validation == nil {
			fmt.Fprint(w, ": a complete sync")
		}
		fmt.Fprintln(w)
	default:
		fmt.Fprintln(w, "FAILED: refused output lines")
	}
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}
