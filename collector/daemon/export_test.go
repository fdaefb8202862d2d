package daemon

// InfoMaxAge is infoMaxAge, for the tests.
const InfoMaxAge = infoMaxAge
