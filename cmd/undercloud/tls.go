package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The self-signed certificate of the operator address, in the data dir.
const (
	generatedCert = "operator-tls.crt"
	generatedKey  = "operator-tls.key"
)

// operatorTLS returns the operator address's TLS configuration and the
// SHA-256 fingerprint of its certificate: from --tls-cert and --tls-key, or
// a self-signed certificate generated on the first start into the data dir
// and reused after (its fingerprint stays what operators pinned).
func operatorTLS(cfg *serveConfig) (*tls.Config, string, string, error) {
	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if certFile == "" {
		certFile, keyFile = filepath.Join(cfg.DataDir, generatedCert), filepath.Join(cfg.DataDir, generatedKey)
		if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
			if err := generateCert(certFile, keyFile, certHosts(cfg.OperatorListen, cfg.ServerIP), time.Now()); err != nil {
				return nil, "", "", fmt.Errorf("operator TLS certificate: %w", err)
			}
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", "", fmt.Errorf("operator TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		fingerprint(pair.Certificate[0]), certFile, nil
}

// fingerprint is the SHA-256 of a DER certificate as openssl x509
// -fingerprint -sha256 prints it, so an operator can compare the two.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hex, ":")
}

// certHosts are the names and addresses a generated certificate is valid
// for: localhost, the listen host, --server-ip and, for a wildcard listen
// address, the host name and every address of the host's interfaces.
func certHosts(listen string, serverIP netip.Addr) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, _ := net.SplitHostPort(listen)
	if a, err := netip.ParseAddr(host); host != "" && (err != nil || !a.IsUnspecified()) {
		hosts = append(hosts, host)
	} else {
		if name, err := os.Hostname(); err == nil {
			hosts = append(hosts, name)
		}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLinkLocalUnicast() {
					hosts = append(hosts, p.Addr().String())
				}
			}
		}
	}
	if serverIP.IsValid() {
		hosts = append(hosts, serverIP.String())
	}
	return hosts
}

// generateCert writes a self-signed ECDSA P-256 certificate for hosts and
// its key (mode 0600). The key is written first and the certificate last,
// by rename: a crash in between leaves no certificate, so the next start
// generates both again.
func generateCert(certFile, keyFile string, hosts []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"undercloud"}, CommonName: "undercloud operator"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own issuer: clients trust it as a root (--ca)
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	tmp := certFile + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, certFile)
}
