package integration

import (
	"fmt"
	"net/http"

	"github.com/collectorhq/collector/internal/egressconf"
)

// EgressPath is where the runner puts the collector's proxy for a job
// whose manifest asks for it (network.proxy; docs/integration-contract.md,
// section 10).
const EgressPath = egressconf.JobPath

// Egress reads the job's proxy document; nil when the job has none.
func Egress() (*egressconf.Job, error) { return egressconf.ReadJob(EgressPath) }

// useEgress routes t (net/http's default transport in Main) through the
// proxy of the document at path, when there is one; it returns the proxy
// without its password, "" when there is none.
func useEgress(path string, t http.RoundTripper) (string, error) {
	job, err := egressconf.ReadJob(path)
	if err != nil || job == nil {
		return "", err
	}
	tr, ok := t.(*http.Transport)
	if !ok {
		return "", fmt.Errorf("egress: the default transport is a %T, not an *http.Transport", t)
	}
	if err := job.Configure(tr); err != nil {
		return "", err
	}
	u, _ := job.ProxyURL()
	if u.User != nil {
		u.User = nil
	}
	return u.String(), nil
}
