package api

import "github.com/collectorhq/collector/integration"

// Limits of the record stream (docs/integration-contract.md). A line is
// validated by integration.ParseRecord, on the collector and again on the
// platform.
const (
	MaxRecordBytes  = integration.MaxRecordBytes // one line, with its newline
	MaxBatchBytes   = 8 << 20                    // one upload
	MaxBatchRecords = 20_000                     // one upload
)

// Record kinds.
const (
	KindEntity       = string(integration.KindEntity)
	KindRelationship = string(integration.KindRelationship)
)
