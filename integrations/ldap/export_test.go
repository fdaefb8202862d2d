package ldap

// OnPage sets the hook told of every page a search asks for; the
// returned func removes it.
func OnPage(f func(filter string, size uint32)) func() {
	pageAsked = f
	return func() { pageAsked = nil }
}
