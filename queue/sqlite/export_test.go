package sqlite

// The hot-path statements, for the query-plan test.
var (
	LeaseNextSQL   = leaseNextSQL
	MayHaveWorkSQL = mayHaveWorkSQL
	ExpireSQL      = expireSQL
	DepthSQL       = depthSQL
	ListSQL        = listSQL
)
