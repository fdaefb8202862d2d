package main

// Environment variables the platform binary reads, all in one place.
const (
	envListen             = "PLATFORM_LISTEN"
	envDataDir            = "PLATFORM_DATA_DIR"
	envDatabase           = "PLATFORM_DATABASE"
	envPublicURL          = "PLATFORM_PUBLIC_URL"
	envTLSCert            = "PLATFORM_TLS_CERT"
	envTLSKey             = "PLATFORM_TLS_KEY"
	envCollectorImage     = "PLATFORM_COLLECTOR_IMAGE"
	envHeartbeatInterval  = "PLATFORM_HEARTBEAT_INTERVAL"
	envEnrollmentTTL      = "PLATFORM_ENROLLMENT_TOKEN_TTL"
	envImagePolicy        = "PLATFORM_IMAGE_POLICY"
	envLeaseTTL           = "PLATFORM_LEASE_TTL"
	envMaxAttempts        = "PLATFORM_MAX_ATTEMPTS"
	envJobMemory          = "PLATFORM_JOB_MEMORY"
	envJobTimeout         = "PLATFORM_JOB_TIMEOUT"
	envJobRetention       = "PLATFORM_JOB_RETENTION"
	envMetricsPublic      = "PLATFORM_METRICS_PUBLIC"
	envRequireMFA         = "PLATFORM_REQUIRE_MFA"
	envInsecureRegistries = "PLATFORM_INSECURE_REGISTRIES"
	envNoImageCheck       = "PLATFORM_NO_IMAGE_CHECK"
	envServer             = "PLATFORM_URL"
	envToken              = "PLATFORM_TOKEN"
	envCAFile             = "PLATFORM_CA_FILE"
)
