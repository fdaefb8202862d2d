package sqlite

// The hot-path statements, for the query-plan test.
var (
	LeaseNextSQL   = leaseNextSQL
	MayHaveWorkSQL = mayHaveWorkSQL
	ExpireSQL      = expireSQL
	DepthSQL       = depthSQL
	ListSQL        = listSQL
	UsageSQL       = usageSQL

	// What a reassignment and a collector's deletion run.
	ReassignSQL                = reassignSQL
	CancelCollectorSQL         = cancelCollectorSQL
	LeaveCollectorSQL          = leaveCollectorSQL
	CancelCollectorInFlightSQL = cancelCollectorInFlightSQL
)

// NextArgs are the parameters of LeaseNextSQL and MayHaveWorkSQL for a
// collector of a pool, with capacity known.
func NextArgs() []any {
	return []any{"l", int64(1), "c", "dc1", int64(1 << 30), int64(256 << 20), int64(0), 0.5, 0.0,
		int64(8 << 30), 4.0, 4, int64(1), true, int64(1)}
}
