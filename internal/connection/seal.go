package connection

import (
	"crypto/rand"
)

// Seal encrypts plain with the connection's secret key (AES-256-GCM, nonce first), bound to
// label: a value sealed under one label does not open under another. Other secrets the
// engine keeps in Redis, such as webhook credentials, are sealed with it like the grant.
func (s *Store) Seal(label string, plain []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(label)), nil
}

// Open decrypts what Seal sealed under label; ErrSecretKey when the key or label differs.
func (s *Store) Open(label string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrSecretKey
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(label))
	if err != nil {
		return nil, ErrSecretKey
	}
	return plain, nil
}
