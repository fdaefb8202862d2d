package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/collectorhq/collector/engine/enginetest"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/release"
)

var (
	registry *enginetest.Registry
	dir      string
)

func TestMain(m *testing.M) {
	enginetest.Main(m, "collector-release", func() error {
		dir, _ = os.MkdirTemp("", "crel-cli-")
		if err := enginetest.Require("docker-registry"); err != nil {
			return err
		}
		var err error
		registry, err = enginetest.StartRegistry(filepath.Join(dir, "registry"))
		return err
	}, func() {
		registry.Stop()
		os.RemoveAll(dir)
	})
}

// run runs the CLI in-process and returns its exit code and output.
func run(args ...string) (int, string) {
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	app.ErrWriter = &out
	err := app.RunContext(context.Background(), append([]string{"collector-release"}, args...))
	code := cliutil.Report(&out, "collector-release", err, classify)
	return code, out.String()
}

func TestKeygenSignVerify(t *testing.T) {
	enginetest.Need(t)
	t.Setenv(release.PasswordEnv, "pw")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	if code, out := run("keygen", "--output-key-prefix", prefix); code != 0 || !strings.Contains(out, prefix+".pub") {
		t.Fatalf("keygen = %d: %s", code, out)
	}
	if code, out := run("keygen", "--output-key-prefix", prefix); code != cliutil.ExitConflict {
		t.Errorf("keygen over existing keys = %d, want %d: %s", code, cliutil.ExitConflict, out)
	}
	ref := registry.Addr + "/cli-test/app:1"
	img, _ := random.Image(256, 1)
	tag, _ := name.NewTag(ref, name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	if code, out := run("verify", "--key", prefix+".pub", "--insecure", ref); code != cliutil.ExitConflict {
		t.Errorf("verify unsigned = %d, want %d: %s", code, cliutil.ExitConflict, out)
	}
	code, out := run("sign", "--key", prefix+".key", "--insecure", ref)
	if code != 0 || !strings.Contains(out, "@sha256:") {
		t.Fatalf("sign = %d: %s", code, out)
	}
	if code, out := run("verify", "--key", prefix+".pub", "--insecure", "--json", ref); code != 0 || !strings.Contains(out, `"signatures":1`) {
		t.Errorf("verify = %d: %s", code, out)
	}
	t.Setenv(release.PasswordEnv, "wrong")
	if code, out := run("sign", "--key", prefix+".key", "--insecure", ref); code != cliutil.ExitAuth {
		t.Errorf("sign with a wrong password = %d, want %d: %s", code, cliutil.ExitAuth, out)
	}
	if code, _ := run("sign", "--key", prefix+".key"); code != cliutil.ExitUsage {
		t.Errorf("sign without an image = %d, want %d", code, cliutil.ExitUsage)
	}
}
