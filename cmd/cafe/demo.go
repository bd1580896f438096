package main

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"cafe/contracts/local"
	"cafe/contracts/registry"
)

// The demo client: on a machine with no client registry, `cafe up` creates
// one with a single client "demo" that may command every device, and keeps
// its token next to it (mode 0600) so that `cafe up` can show it again and
// `cafe order` can use it without flags. It is meant for trying cafe on one
// machine; production registries are made with `cafe clients add`.
const demoClientID = "demo"

// demoPaths are the registry and token files of the demo client.
func demoPaths() (registry, token string, err error) {
	dir, err := local.Default()
	if err != nil {
		return "", "", err
	}
	return dir.Registry(), dir.DemoToken(), nil
}

// demoClient is the demo registry and its client's token ("" when the
// registry is the user's own); created tells whether they were made now.
type demoClient struct {
	registry, token string
	created         bool
}

// ensureDemo returns the demo registry and token, creating both when the
// registry has no clients yet: there is none, or it is the empty one `cafe
// setup` (task up) writes before the first `cafe up`. A registry with
// clients of the user's own is left alone and shows no token.
func ensureDemo() (demoClient, error) {
	file, tokenFile, err := demoPaths()
	if err != nil {
		return demoClient{}, err
	}
	reg, err := registry.Load(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return demoClient{}, err
	case reg.Len() > 0:
		if _, ok := reg.Client(demoClientID); !ok {
			return demoClient{registry: file}, nil // a registry of the user's own: nothing to show
		}
		return demoClient{registry: file, token: demoToken()}, nil
	}
	token, err := addClient(file, demoClientID, []string{"*"}, 0, 0)
	if err != nil {
		return demoClient{}, err
	}
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return demoClient{}, err
	}
	return demoClient{registry: file, token: token, created: true}, nil
}

// demoToken is the demo client's token, if there is one.
func demoToken() string {
	_, tokenFile, err := demoPaths()
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
