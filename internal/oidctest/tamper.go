package oidctest

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// rewriteTokens passes the token endpoint's answers through the knobs:
// it counts exchanges and refusals and, when the clock is moved, a tamper
// hook is set or the unpublished key signs, makes the ID token again.
// Every other request goes to the op package untouched.
func (p *Provider) rewriteTokens(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != tokenPath {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		p.mu.Lock()
		if rec.Code != http.StatusOK {
			p.refusals++
		} else {
			p.exchanges++
		}
		tamper, key, offset := p.tamper, p.unpublished, p.offset
		p.mu.Unlock()
		if rec.Code == http.StatusOK && (tamper != nil || key != nil || offset != 0) {
			var err error
			if body, err = p.remake(body, tamper, key, offset); err != nil {
				http.Error(w, "oidctest: remake the ID token: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
}

// remake signs the token response's ID token again after moving its
// times by offset and applying tamper, with key (nil: the published one).
func (p *Provider) remake(body []byte, tamper func(map[string]any), key *rsa.PrivateKey, offset time.Duration) ([]byte, error) {
	var resp map[string]any
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	raw, _ := resp["id_token"].(string)
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(jws.UnsafePayloadWithoutVerification()))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	for _, c := range []string{"iat", "exp", "auth_time", "nbf"} {
		if n, ok := claims[c].(json.Number); ok {
			v, _ := n.Int64()
			claims[c] = v + int64(offset/time.Second)
		}
	}
	if tamper != nil {
		tamper(claims)
	}
	if key == nil {
		key = p.st.key.key
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: p.st.key.id}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	signed, err := signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	if resp["id_token"], err = signed.CompactSerialize(); err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}
