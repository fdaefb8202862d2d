package api

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/collectorhq/collector/crypto"
)

// PathUpgrade is where an admin asks collectors to run another image.
const PathUpgrade = "/api/v1/upgrades"

// UpgradeRequest asks one collector, a pool's or all collectors to run
// Image (a tag, resolved to its digest when asked, or a digest).
type UpgradeRequest struct {
	CollectorID string `json:"collector_id,omitempty"`
	Pool        string `json:"pool,omitempty"`
	All         bool   `json:"all,omitempty"`
	Image       string `json:"image"`
}

// UpgradeResult is what an upgrade request set.
type UpgradeResult struct {
	// Image is the digest reference the collectors are asked to run.
	Image      string   `json:"image"`
	Version    string   `json:"version,omitempty"`
	Collectors []string `json:"collectors"`
}

// Upgrade states a daemon reports.
const (
	UpgradePulling    = "pulling"
	UpgradeDraining   = "draining"
	UpgradeRunner     = "runner_replaced"
	UpgradeDaemon     = "daemon_replaced"
	UpgradeSucceeded  = "succeeded"
	UpgradeRolledBack = "rolled_back"
	UpgradeRefused    = "refused"
)

var upgradeStates = map[string]bool{UpgradePulling: true, UpgradeDraining: true, UpgradeRunner: true, UpgradeDaemon: true,
	UpgradeSucceeded: true, UpgradeRolledBack: true, UpgradeRefused: true}

// UpgradeStatus is where a collector's last upgrade stands.
type UpgradeStatus struct {
	State  string `json:"state"`
	Image  string `json:"image"`            // the image it upgrades to
	Reason string `json:"reason,omitempty"` // why it was refused or rolled back
	// Steps are the states this upgrade went through, in order, State
	// last: a step quicker than a heartbeat is still reported.
	Steps []string `json:"steps,omitempty"`
}

// MaxUpgradeSteps bounds UpgradeStatus.Steps.
const MaxUpgradeSteps = 8

// Final says whether the upgrade has ended (the platform stops asking for
// an image that was refused or rolled back).
func (u UpgradeStatus) Final() bool {
	return u.State == UpgradeSucceeded || u.State == UpgradeRolledBack || u.State == UpgradeRefused
}

// HeartbeatAnswer is the platform's answer to a heartbeat.
type HeartbeatAnswer struct {
	// DesiredImage, when set, is the digest reference the collector's
	// daemon and runner should run.
	DesiredImage string `json:"desired_image,omitempty"`
	// PlatformKeys, during a rotation of the platform's signing key or
	// CA, is the platform's signed key set (docs/auth.md §8): the daemon
	// pins it, as the runner pins the one a lease carries.
	PlatformKeys *crypto.SignedKeySet `json:"platform_keys,omitempty"`
}

// digestRef is an image reference by digest.
var digestRef = bounded{regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:+-]*@sha256:[0-9a-f]{64}$`), 255 + len("@sha256:") + 64}

// ValidDigestRef says whether s is an image reference by sha256 digest.
func ValidDigestRef(s string) bool { return digestRef.MatchString(s) }

// Validate checks an upgrade request: one target, an image reference.
func (r UpgradeRequest) Validate() error {
	n := 0
	for _, set := range []bool{r.CollectorID != "", r.Pool != "", r.All} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		return invalidf("give one of collector_id, pool or all")
	case r.CollectorID != "" && !ValidCollectorID(r.CollectorID):
		return invalidf("collector_id is malformed")
	case !imagePattern.MatchString(r.Image):
		return invalidf("image must be an image reference (registry/repo:tag or @digest)")
	}
	return validPool(r.Pool)
}

// Validate checks an upgrade status a heartbeat carries.
func (u *UpgradeStatus) Validate() error {
	if u == nil {
		return nil
	}
	if !upgradeStates[u.State] {
		return invalidf("upgrade.state %q is not an upgrade state", u.State)
	}
	if len(u.Steps) > MaxUpgradeSteps {
		return invalidf("upgrade.steps: at most %d", MaxUpgradeSteps)
	}
	for _, s := range u.Steps {
		if !upgradeStates[s] {
			return invalidf("upgrade.steps: %q is not an upgrade state", s)
		}
	}
	if !ValidDigestRef(u.Image) {
		return invalidf("upgrade.image must be an image reference by digest")
	}
	return printableLine("upgrade.reason", u.Reason, 1024)
}

// Upgrade asks collectors to run another image.
func (c *AdminClient) Upgrade(ctx context.Context, req UpgradeRequest) (*UpgradeResult, error) {
	var out UpgradeResult
	return &out, c.do(ctx, http.MethodPost, PathUpgrade, req, &out)
}

// CompareVersions compares two versions such as v1.2.3, 1.2 or 1.2.3-rc1
// by their numeric parts (a missing part is 0; a suffix after '-' sorts
// before the release). ok is false when either has no leading number.
func CompareVersions(a, b string) (cmp int, ok bool) {
	pa, sa, okA := versionParts(a)
	pb, sb, okB := versionParts(b)
	if !okA || !okB {
		return 0, false
	}
	for i := range max(len(pa), len(pb)) {
		x, y := at(pa, i), at(pb, i)
		if x != y {
			if x < y {
				return -1, true
			}
			return 1, true
		}
	}
	switch {
	case sa == sb:
		return 0, true
	case sa == "":
		return 1, true
	case sb == "":
		return -1, true
	case sa < sb:
		return -1, true
	}
	return 1, true
}

func at(p []int, i int) int {
	if i < len(p) {
		return p[i]
	}
	return 0
}

func versionParts(v string) ([]int, string, bool) {
	v = strings.TrimPrefix(v, "v")
	v, suffix, _ := strings.Cut(v, "-")
	var out []int
	for _, f := range strings.Split(v, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, "", false
		}
		out = append(out, n)
	}
	return out, suffix, len(out) > 0
}
