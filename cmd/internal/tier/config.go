package tier

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
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
	out.WriteString("\n")
	if err := bridgeTemplate.Execute(&out, bridge); err != nil {
		return "", err
	}
	return out.String(), nil
}

var bridgeTemplate = template.Must(template.New("bridge.conf").Option("missingkey=error").Parse(mosquitto.Bridge))
