package install

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/trust"
)

// TrustOptions are the operator's say over which images the collector
// runs; the platform has none.
type TrustOptions struct {
	// Keys are public keys (PEM) the operator trusts image signatures
	// from; they join the trust root in the config dir.
	Keys []byte
	// AllowInsecure lets the platform's policy accept unsigned images.
	AllowInsecure bool
}

// ApprovePolicy checks the platform's policy against the operator's trust
// root in dir (config.TrustedKeysFile) and returns the root. The keys in
// opts join the root first. With no root yet and no keys given, the keys
// of this policy are pinned: trust on first use, said clearly with their
// fingerprints; from then on a policy may only use keys in the root. A
// refusal says what to do; the root is saved only when the policy passes.
func ApprovePolicy(dir string, policy []byte, opts TrustOptions, p func(string, ...any)) (*trust.Root, error) {
	file := filepath.Join(dir, config.TrustedKeysFile)
	data, exists, err := config.ReadTrustedKeys(dir)
	if err != nil {
		return nil, err
	}
	root, err := trust.ParseRoot(data)
	if err != nil {
		return nil, fmt.Errorf("trusted image keys %s: %w: fix or remove the file", file, err)
	}
	operator, err := trust.ParseRoot(opts.Keys)
	if err != nil {
		return nil, fmt.Errorf("trusted image keys given to the installer (COLLECTOR_TRUSTED_KEYS): %w", err)
	}
	added := root.Add(operator)
	pinned := !exists && operator.Len() == 0
	if pinned {
		keys, err := trust.PolicyKeys(policy)
		if err != nil {
			return nil, refused(err)
		}
		root = keys
	}
	if err := trust.CheckPolicy(policy, root, opts.AllowInsecure); err != nil {
		return nil, refused(err)
	}
	if pinned || len(added) > 0 || !exists {
		if err := config.WriteFile(file, root.PEM()); err != nil {
			return nil, fmt.Errorf("write the trusted image keys: %w", err)
		}
	}
	switch {
	case pinned && root.Len() > 0:
		p("      image trust: TRUST ON FIRST USE: no trusted keys were given, so the platform's policy's %d signing key(s) are now pinned in %s:", root.Len(), file)
		for _, f := range root.Fingerprints() {
			p("        %s", f)
		}
		p("      check them against your release key (openssl pkey -pubin -in release.pub -outform DER | sha256sum); " +
			"to choose the keys yourself, install with COLLECTOR_TRUSTED_KEYS. A policy from the platform may only use these keys from now on.")
	case root.Len() == 0:
		p("      image trust: no signing key is trusted yet (the policy accepts unsigned images): a policy with keys will need them approved")
	case len(added) > 0:
		p("      image trust: key(s) approved by the operator added to %s: %s", file, strings.Join(added, ", "))
	default:
		p("      image trust: the platform's policy uses only keys trusted in %s (%d)", file, root.Len())
	}
	if opts.AllowInsecure {
		p("      WARNING: COLLECTOR_ALLOW_INSECURE_POLICY is set: a policy that accepts unsigned images is allowed on this host")
	}
	return root, nil
}

func refused(err error) error {
	return fmt.Errorf("the platform's image policy is refused: %w. The enrollment is kept: run the installer again once the key is approved "+
		"or the policy allowed; a corrected policy from the platform comes only with a new enrollment", err)
}
