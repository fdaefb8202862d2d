package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// A data key file holds the key ring (docs/auth.md, "Rotating the data
// key"): one key per line, standard base64 of its 32 bytes. The first key
// is the current one (it seals); every key opens. Blank lines and lines
// starting with # are ignored. A file of exactly 32 bytes is the older
// form, one raw key: read as a ring of that key alone (a base64 line is 44
// characters, so the two forms never mix up).

// ParseDataKeyFile returns the keys of a data key file, the current first.
func ParseDataKeyFile(b []byte) ([][]byte, error) {
	if len(b) == DataKeySize {
		return [][]byte{bytes.Clone(b)}, nil
	}
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(k) != DataKeySize {
			return nil, fmt.Errorf("line %d: want the base64 of a %d-byte key (head -c %d /dev/urandom | base64)", i+1, DataKeySize, DataKeySize)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key in the file: want one base64 key per line, the current one first")
	}
	return keys, nil
}

// FormatDataKeyFile returns the data key file of keys (the current first).
func FormatDataKeyFile(keys [][]byte) []byte {
	b := []byte("# Collector platform data keys: the first seals, every one opens (docs/auth.md).\n")
	for _, k := range keys {
		b = append(b, DataKeyFileEntry(k)...)
	}
	return b
}

// DataKeyFileEntry returns the lines of one key in a data key file: a
// comment with its ID, then the key.
func DataKeyFileEntry(key []byte) []byte {
	return fmt.Appendf(nil, "# key %s\n%s\n", DataKeyID(key), base64.StdEncoding.EncodeToString(key))
}
