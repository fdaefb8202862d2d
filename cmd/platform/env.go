package main

import "github.com/collectorhq/collector/internal/env"

// Environment variables the platform binary reads: short local names for
// the registry in internal/env.
const (
	envListen              = env.PlatformListen
	envDataDir             = env.PlatformDataDir
	envDatabase            = env.PlatformDatabase
	envDatabaseMaxConns    = env.PlatformDatabaseMaxConns
	envDataKeyFile         = env.PlatformDataKeyFile
	envPublicURL           = env.PlatformPublicURL
	envTLSCert             = env.PlatformTLSCert
	envTLSKey              = env.PlatformTLSKey
	envCollectorImage      = env.PlatformCollectorImage
	envHeartbeatInterval   = env.PlatformHeartbeatInterval
	envEnrollmentTTL       = env.PlatformEnrollmentTTL
	envCollectorKeyGrace   = env.PlatformCollectorKeyGrace
	envImagePolicy         = env.PlatformImagePolicy
	envLeaseTTL            = env.PlatformLeaseTTL
	envMaxAttempts         = env.PlatformMaxAttempts
	envJobMemory           = env.PlatformJobMemory
	envJobCPUs             = env.PlatformJobCPUs
	envMinCollectorVersion = env.PlatformMinCollectorVersion
	envMaxJobsPerCollector = env.PlatformMaxJobsPerCollector
	envJobTimeout          = env.PlatformJobTimeout
	envJobRetention        = env.PlatformJobRetention
	envMetricsPublic       = env.PlatformMetricsPublic
	envRequireMFA          = env.PlatformRequireMFA
	envInsecureRegistries  = env.PlatformInsecureRegistries
	envNoImageCheck        = env.PlatformNoImageCheck
	envServer              = env.PlatformServer
	envToken               = env.PlatformToken
	envCAFile              = env.PlatformCAFile
)
