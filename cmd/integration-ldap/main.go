// Command integration-ldap is the LDAP / Active Directory integration's
// program, the entrypoint of the integration-ldap image.
package main

import (
	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/integrations/ldap"
)

func main() {
	integration.Main(ldap.Name, ldap.Run, integration.WithValidate(ldap.Validate))
}
