package main

import (
	"crypto/tls"
	"net/http"
	"os"

	"cafe/cmd/internal/certs"
	"cafe/cmd/internal/cli"
	"cafe/contracts/linktls"
	"cafe/contracts/local"
)

// settingCAFile is the CA `cafe order` trusts.
var settingCAFile = cli.Setting("ca-file", "CAFE_CA_FILE")

// trust sets up the HTTP client: the system's trust store plus --ca-file,
// or the local CA of `cafe setup` when --ca-file is not given and it exists.
func (o *orderOptions) trust() error {
	if o.caFile == "" {
		o.caFile = localCA()
	}
	if o.caFile == "" {
		o.http = http.DefaultClient
		return nil
	}
	pool, err := linktls.SystemPlus(o.caFile)
	if err != nil {
		return settingCAFile.Errorf("%s: %v; want a readable PEM file of the CA that signed the cashier's certificate", o.caFile, err)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	o.http = &http.Client{Transport: t}
	return nil
}

// localCA is the CA file of `cafe setup` on this machine, or "".
func localCA() string {
	dir, err := local.Default()
	if err != nil {
		return ""
	}
	f := certs.Dir(dir.TLS()).CA()
	if _, err := os.Stat(f); err != nil {
		return ""
	}
	return f
}

// httpClient is the HTTP client every request to the cashier goes through:
// the one that trusts --ca-file once the flags are read.
func (o *orderOptions) httpClient() *http.Client {
	if o.http == nil {
		return http.DefaultClient
	}
	return o.http
}
