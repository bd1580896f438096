package tier

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"cafe/deploy/mosquitto"
)

// Broker is one broker of the tier: its name ("core", "edge-1", ...),
// its port on the tier's host, and the folder of its files.
type Broker struct {
	Name string
	Host string
	Port int
	Dir  string
}

// Addr is host:port.
func (b Broker) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// URL is the broker's MQTT URL without a login (tcp://host:port).
func (b Broker) URL() string { return "tcp://" + b.Addr() }

// The broker's files, all in its folder.
func (b Broker) Conf() string       { return filepath.Join(b.Dir, "mosquitto.conf") }
func (b Broker) PidFile() string    { return filepath.Join(b.Dir, "mosquitto.pid") }
func (b Broker) LogFile() string    { return filepath.Join(b.Dir, "mosquitto.log") }
func (b Broker) DynsecFile() string { return filepath.Join(b.Dir, "dynsec.json") }
func (b Broker) ACLFile() string    { return filepath.Join(b.Dir, "cafe.acl") }

// Bridge is what bridge.conf is filled in with for one edge.
type Bridge struct {
	Name     string // the edge's name: the bridge's connection name and client ids
	Core     string // host:port of the core
	Password string // cafe-bridge's password on the core
}

// replaced are the settings of cafe.conf each broker of the tier gets a
// value of its own for; each must be in cafe.conf, so that a setting
// renamed there is noticed here.
func replaced(b Broker) map[string]string {
	return map[string]string{
		"listener":               fmt.Sprintf("%d %s", b.Port, b.Host),
		"plugin_opt_config_file": b.DynsecFile(),
		"acl_file":               b.ACLFile(),
		"persistence_location":   b.Dir + "/",
		"persistence_file":       "mosquitto.db",
		"pid_file":               b.PidFile(),
		"log_dest":               "file " + b.LogFile(),
	}
}

// dropped are cafe.conf's TLS listener settings: the tier's brokers
// listen on plain TCP on their host (see deploy/README.md).
var dropped = map[string]bool{"cafile": true, "certfile": true, "keyfile": true, "tls_version": true}

// Config is the whole Mosquitto config of b: cafe.conf's settings with
// b's own listener, files and paths, and for an edge (bridge not nil) its
// bridge to the core.
func Config(b Broker, bridge *Bridge) (string, error) {
	var out strings.Builder
	fmt.Fprintf(&out, "# Mosquitto config of the tier's %s, written by `cafe tier conf` from\n"+
		"# deploy/mosquitto/cafe.conf (read the reasons there) and bridge.conf. Do not edit:\n"+
		"# it is written again on every `task tier:up`.\n", b.Name)
	repl := replaced(b)
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(mosquitto.Conf))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, _, _ := strings.Cut(line, " ")
		switch {
		case line == "" || strings.HasPrefix(line, "#") || dropped[name]:
		case repl[name] != "" && seen[name]:
			// a second listener: the TLS one, dropped with its settings
		case repl[name] != "":
			seen[name] = true
			out.WriteString(name + " " + repl[name] + "\n")
		default:
			out.WriteString(line + "\n")
		}
	}
	for name := range repl {
		if !seen[name] {
			return "", fmt.Errorf("deploy/mosquitto/cafe.conf has no %s setting, which the tier's brokers replace", name)
		}
	}
	if bridge == nil {
		return out.String(), nil
	}
	conf, err := BridgeConf(mosquitto.Bridge, *bridge)
	if err != nil {
		return "", err
	}
	return out.String() + "\n" + conf, nil
}

// BridgeConf is text, deploy/mosquitto/bridge.conf or a copy of it (the
// one a Kubernetes pod mounts), filled in for b.
func BridgeConf(text string, b Bridge) (string, error) {
	if err := b.Validate(); err != nil {
		return "", err
	}
	t, err := template.New("bridge.conf").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	if err := t.Execute(&out, b); err != nil {
		return "", err
	}
	return out.String(), nil
}

// bridgeName is what a bridge's name may be: it ends up in client ids and
// in the topic cafe/bridges/{name}, so no MQTT wildcard, slash or space.
var bridgeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate says what in b would not make a bridge of one line per
// setting, or nil.
func (b Bridge) Validate() error {
	var errs []error
	if !bridgeName.MatchString(b.Name) {
		errs = append(errs, fmt.Errorf("bridge name %q: want 1 to 64 letters, digits, '.', '_' or '-' (a pod's or edge's name)", b.Name))
	}
	if host, port, err := net.SplitHostPort(b.Core); err != nil || host == "" || strings.ContainsAny(b.Core, " \t\r\n") {
		errs = append(errs, fmt.Errorf("core %q: want host:port", b.Core))
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		errs = append(errs, fmt.Errorf("core %q: port: want 1 to 65535", b.Core))
	}
	if b.Password == "" || strings.ContainsAny(b.Password, " \t\r\n") {
		errs = append(errs, errors.New("bridge password: want a word without spaces (derived from the auth key)"))
	}
	return errors.Join(errs...)
}
