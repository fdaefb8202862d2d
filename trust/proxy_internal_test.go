package trust

import (
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"go.podman.io/image/v5/docker/reference"
)

// TestSystemContextEgress: registry requests of the signature check go
// through the configured proxy function (containers/image's DockerProxy),
// and the extra CA is a .crt in the certs dir containers/image adds to the
// system's roots; Close removes it.
func TestSystemContextEgress(t *testing.T) {
	proxy, _ := url.Parse("http://proxy.example:3128")
	pem := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	v, err := New(Config{Policy: []byte(`{"default":[{"type":"reject"}]}`), Logger: slog.New(slog.DiscardHandler),
		Proxy: func(*url.URL) (*url.URL, error) { return proxy, nil }, ExtraCA: pem})
	if err != nil {
		t.Fatal(err)
	}
	named, _ := reference.ParseNormalizedNamed("registry.example/app:1")
	sys := v.systemContext(named)
	if sys.DockerProxy == nil {
		t.Fatal("no DockerProxy")
	}
	if got, _ := sys.DockerProxy(&url.URL{Scheme: "https", Host: "registry.example"}); got != proxy {
		t.Errorf("DockerProxy = %v", got)
	}
	b, err := os.ReadFile(filepath.Join(sys.DockerCertPath, "extra-ca.crt"))
	if err != nil || string(b) != string(pem) {
		t.Errorf("extra CA in %q: %q, %v", sys.DockerCertPath, b, err)
	}
	v.Close()
	if _, err := os.Stat(sys.DockerCertPath); !os.IsNotExist(err) {
		t.Errorf("certs dir left after Close: %v", err)
	}

	plain, err := New(Config{Policy: []byte(`{"default":[{"type":"reject"}]}`), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if sys := plain.systemContext(named); sys.DockerProxy != nil || sys.DockerCertPath != "" {
		t.Errorf("without egress settings: proxy %v, certs %q", sys.DockerProxy != nil, sys.DockerCertPath)
	}
}
