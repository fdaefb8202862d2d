package access

// What the account service seals with the data key is bound (aad) to its
// use. A data key rotation (`platform keys rotate`) opens and re-seals
// these values, so it needs the same aad.

// TOTPSecretAAD is the aad of a user's TOTP secret, enrolled or pending.
func TOTPSecretAAD(userID string) []byte { return totpAAD(userID) }

// SSOSecretAAD is the aad of the SSO client secret.
func SSOSecretAAD() []byte { return append([]byte(nil), sealedSecretAAD...) }
