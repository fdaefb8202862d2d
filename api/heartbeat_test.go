package api_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
)

// terminalAttacks are strings a collector could report to take over the
// terminal of an administrator reading them.
var terminalAttacks = map[string]string{
	"clear screen": "\x1b[2J\x1b[H",
	"OSC 8 link":   "\x1b]8;;https://evil.example/\x1b\\x\x1b]8;;\x1b\\",
	"BEL":          "ding\a",
	"C1 CSI":       "\u009b31m",
	"RTL override": "podman\u202e",
	"isolate":      "5.4\u2066",
	"newline":      "a\nb",
	"tab":          "a\tb",
	"CR":           "a\rb",
	"DEL":          "a\x7f",
	"NUL":          "a\x00",
	"line sep":     "a\u2028b",
}

// TestHeartbeatRefusesControlCharacters: every string a heartbeat carries
// is printable text on one line; anything else is refused (400), naming
// the field.
func TestHeartbeatRefusesControlCharacters(t *testing.T) {
	fields := map[string]func(*api.Heartbeat, string){
		"version":        func(h *api.Heartbeat, s string) { h.Version = s },
		"engine.kind":    func(h *api.Heartbeat, s string) { h.Engine.Kind = s },
		"engine.version": func(h *api.Heartbeat, s string) { h.Engine.Version = s },
		"runner_state":   func(h *api.Heartbeat, s string) { h.RunnerState = s },
		"engine_error":   func(h *api.Heartbeat, s string) { h.EngineError = s },
	}
	for field, set := range fields {
		for name, bad := range terminalAttacks {
			hb := goodHeartbeat()
			set(&hb, bad)
			b, _ := json.Marshal(hb)
			_, err := api.DecodeHeartbeat(strings.NewReader(string(b)))
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), field+" must be printable text on one line") {
				t.Errorf("%s with %s: err = %v, want ErrInvalid naming %s", field, name, err, field)
			}
		}
	}
	if _, err := api.DecodeHeartbeat(strings.NewReader(`{"version":"1.0","runner_state":"r\u00e9ady \u6771\u4eac"}`)); err != nil {
		t.Errorf("printable non-ASCII refused: %v", err)
	}
	hb := goodHeartbeat()
	b, _ := json.Marshal(hb)
	if _, err := api.DecodeHeartbeat(strings.NewReader(string(b))); err != nil {
		t.Errorf("good heartbeat refused: %v", err)
	}
}

func goodHeartbeat() api.Heartbeat {
	return api.Heartbeat{Version: "1.2.3 (abc123)", Engine: api.Engine{Kind: "podman", Version: "5.4.0"},
		RunnerState: api.RunnerRunning, EngineError: "cannot connect to Podman: dial unix /run/podman/podman.sock: connect: no such file or directory"}
}

// TestNamesRefuseBidiControls: a collector's or an integration's name is
// shown in every listing, so it may not hold what reorders the text
// around it either.
func TestNamesRefuseBidiControls(t *testing.T) {
	for name, bad := range terminalAttacks {
		if err := (api.CreateCollectorRequest{Name: "edge" + bad}).Validate(); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("collector name with %s: err = %v, want ErrInvalid", name, err)
		}
	}
	for _, ok := range []string{"edge one", "Zoë's 東京 collector", "👩‍👩‍👧"} {
		if err := (api.CreateCollectorRequest{Name: ok}).Validate(); err != nil {
			t.Errorf("collector name %q: %v", ok, err)
		}
	}
}
