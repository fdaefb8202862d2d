// Passkeys (WebAuthn): registered and used from the second-factor pages.
// The pages work without this script for the other factors.
