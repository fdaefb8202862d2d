package trust

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// Config configures a Verifier.
type Config struct {
	// Policy is a containers/image policy.json document. Required.
	Policy []byte
	// InsecureRegistries are registries (host[:port], e.g. 127.0.0.1:5000)
	// reached over plain HTTP or TLS without certificate checks.
	InsecureRegistries []string
	// InsecureLoopback adds every registry on a loopback address
	// (127.0.0.0/8, ::1, localhost) to InsecureRegistries: the platform's
	// own host, where tests and the demo run theirs. Signatures are
	// checked all the same.
	InsecureLoopback bool
	// Logger receives a warning at every use of a policy requirement
	// that accepts anything. Required.
	Logger *slog.Logger
	// UserAgent names the caller to registries.
	UserAgent string
	// Proxy chooses the proxy of each registry request (nil: none, or
	// containers/image's default, the environment's).
	Proxy func(*url.URL) (*url.URL, error)
	// ExtraCA is a PEM bundle trusted beside the system's roots for
	// registries (a TLS-inspecting proxy's CA).
	ExtraCA []byte
	// Mirrors are read before the registries they mirror. The host's
	// registries.conf is never read: these are the only mirrors.
	Mirrors []Mirror
}

// ConfigError names the bad field of a Config.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("trust config: %s: %v", e.Field, e.Err) }
func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks the config and names the first bad field.
func (c *Config) Validate() error {
	if c.Logger == nil {
		return &ConfigError{Field: "Logger", Err: errors.New("required")}
	}
	if _, err := ParsePolicy(c.Policy); err != nil {
		return &ConfigError{Field: "Policy", Err: err}
	}
	for _, m := range c.Mirrors {
		if m.Prefix == "" || len(m.Locations) == 0 {
			return &ConfigError{Field: "Mirrors", Err: fmt.Errorf("mirror %+v: want a prefix and a location", m)}
		}
	}
	return nil
}

// Verifier checks images against a signature policy. It is safe for
// concurrent use. Close it when done.
type Verifier struct {
	policy   *Policy
	insecure []string
	loopback bool
	log      *slog.Logger
	agent    string
	regsDir  string // private registries.d: read sigstore attachments
	regsConf string // private registries.conf: the mirrors
	proxy    func(*url.URL) (*url.URL, error)
	certDir  string // the extra CA as containers/image's certs dir, or ""
}

// New builds a Verifier.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	policy, _ := ParsePolicy(cfg.Policy)
	dir, err := os.MkdirTemp("", "collector-trust-")
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	// containers/image reads cosign's attachments only where registries.d
	// says so; lookaside storage points at an empty private directory so
	// no host configuration adds signatures.
	conf := fmt.Sprintf("default-docker:\n  use-sigstore-attachments: true\n  lookaside: file://%s\n", filepath.Join(dir, "lookaside"))
	if err := os.WriteFile(filepath.Join(dir, "default.yaml"), []byte(conf), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("trust: %w", err)
	}
	v := &Verifier{policy: policy, insecure: slices.Clone(cfg.InsecureRegistries), loopback: cfg.InsecureLoopback,
		log: cfg.Logger, agent: cfg.UserAgent, regsDir: dir, proxy: cfg.Proxy, regsConf: filepath.Join(dir, "registries.conf")}
	if err := os.WriteFile(v.regsConf, []byte(registriesConf(cfg.Mirrors, v.insecureHost)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("trust: registries.conf: %w", err)
	}
	if len(cfg.ExtraCA) > 0 {
		// containers/image adds every *.crt of DockerCertPath to the
		// system's roots.
		v.certDir = filepath.Join(dir, "certs")
		if err := os.Mkdir(v.certDir, 0o700); err == nil {
			err = os.WriteFile(filepath.Join(v.certDir, "extra-ca.crt"), cfg.ExtraCA, 0o600)
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("trust: extra CA: %w", err)
		}
	}
	return v, nil
}

// Close releases the Verifier's files.
func (v *Verifier) Close() error { return os.RemoveAll(v.regsDir) }

func (v *Verifier) systemContext(named reference.Named) *types.SystemContext {
	sys := &types.SystemContext{RegistriesDirPath: v.regsDir, DockerRegistryUserAgent: v.agent,
		DockerProxy: v.proxy, DockerCertPath: v.certDir,
		SystemRegistriesConfPath: v.regsConf, SystemRegistriesConfDirPath: filepath.Join(v.regsDir, "registries.conf.d")}
	if v.insecureHost(reference.Domain(named)) {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	return sys
}

// isLoopback says whether a registry's host[:port] is a loopback address.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Verify resolves ref (a tag or a digest reference) to its digest over the
// registry, checks the policy on the image opened by that digest, and
// returns the digest reference (name@sha256:...) to pull and run. A refusal
// is a *RefusalError wrapping one of the package's sentinel errors.
func (v *Verifier) Verify(ctx context.Context, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", &RefusalError{Image: ref, Reason: ErrInvalidReference, Detail: err.Error()}
	}
	named = reference.TagNameOnly(named)
	sys := v.systemContext(named)
	dig, err := v.resolve(ctx, sys, named)
	if err != nil {
		return "", v.refuse(ref, "", err)
	}
	byDigest, err := reference.WithDigest(reference.TrimNamed(named), dig)
	if err != nil {
		return "", &RefusalError{Image: ref, Reason: ErrInvalidReference, Detail: err.Error()}
	}
	if err := v.check(ctx, sys, byDigest); err != nil {
		return "", v.refuse(ref, dig.String(), err)
	}
	return byDigest.String(), nil
}

// resolve asks the registry for the manifest named and returns its digest;
// for a digest reference it checks the registry's answer has that digest.
func (v *Verifier) resolve(ctx context.Context, sys *types.SystemContext, named reference.Named) (digest.Digest, error) {
	src, err := openSource(ctx, sys, named)
	if err != nil {
		return "", err
	}
	defer src.Close()
	man, _, err := src.GetManifest(ctx, nil)
	if err != nil {
		return "", err
	}
	if d, ok := named.(reference.Canonical); ok {
		if match, err := manifest.MatchesDigest(man, d.Digest()); err != nil || !match {
			return "", &RefusalError{Reason: ErrDigestMismatch, Detail: "the registry's manifest does not have digest " + d.Digest().String()}
		}
		return d.Digest(), nil
	}
	return manifest.Digest(man)
}

// check evaluates the policy on the image named by digest.
func (v *Verifier) check(ctx context.Context, sys *types.SystemContext, named reference.Canonical) error {
	imgRef, err := docker.NewReference(named)
	if err != nil {
		return err
	}
	if acceptsAnything(v.policy.requirements(imgRef)) {
		v.log.Warn("signature policy accepts any image here: not verifying (insecureAcceptAnything)", "image", named.String())
	}
	pc, err := signature.NewPolicyContext(v.policy.policy)
	if err != nil {
		return err
	}
	defer pc.Destroy()
	src, err := imgRef.NewImageSource(ctx, sys)
	if err != nil {
		return err
	}
	defer src.Close()
	allowed, err := pc.IsRunningImageAllowed(ctx, image.UnparsedInstance(src, nil))
	if err != nil {
		return err
	}
	if !allowed {
		return errors.New("the policy did not allow the image")
	}
	return nil
}

func openSource(ctx context.Context, sys *types.SystemContext, named reference.Named) (types.ImageSource, error) {
	imgRef, err := docker.NewReference(named)
	if err != nil {
		return nil, err
	}
	return imgRef.NewImageSource(ctx, sys)
}

// refuse turns an error into a RefusalError naming the reason.
func (v *Verifier) refuse(ref, dig string, err error) error {
	var re *RefusalError
	if errors.As(err, &re) {
		re.Image, re.Digest = ref, dig
		return re
	}
	reason := classifyPolicyError(err)
	return &RefusalError{Image: ref, Digest: dig, Reason: reason, Detail: err.Error()}
}
