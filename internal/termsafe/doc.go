// Package termsafe makes strings from collectors and integrations safe to
// show on a terminal. A terminal acts on control characters: ESC starts
// sequences that clear the screen, move the cursor, set the window title
// or print hyperlinks (OSC 8), C1 controls (U+0080-U+009F, and the raw
// bytes 0x80-0x9F in an 8-bit terminal) do the same in one character, and
// Unicode's bidirectional formatting characters reorder what follows, so a
// value can pass for another. This package writes each of them as a
// readable escape (\x1b, \u009b, \u202e) and keeps every other printable
// character, in any script.
package termsafe
