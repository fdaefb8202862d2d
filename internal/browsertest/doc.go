// Package browsertest runs a real headless Chromium for tests and drives it
// over the DevTools protocol (chromedp): one browser per test, started from
// Debian's /usr/bin/chromium with a fresh profile, each tab in a browser
// context of its own (its own cookies: one tab is one person's browser),
// virtual WebAuthn authenticators, and screenshots kept as artifacts.
//
// The browser talks to the test over a pipe (no debugging port at all) and
// resolves no name but localhost, so it reaches nothing but the test's own
// servers on 127.0.0.1. Where Chromium is missing the tests skip, saying
// so; under CI=true they fail, since CI installs it (apt-get install
// chromium).
package browsertest
