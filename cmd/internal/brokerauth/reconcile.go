package brokerauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/mqttlink"
	"cafe/contracts/mqttlink/dynsec"
	"cafe/contracts/registry"
)

// Reconciler keeps a running broker's logins equal to Desired(registry,
// key). It owns no state of its own: the fingerprints the broker holds say
// what is current, so it can stop, restart, or run on another host.
type Reconciler struct {
	RegistryFile string
	Key          identity.Key
	Control      *dynsec.Control // logged in as cafe-admin
	Admin        *mqttlink.Link  // the same link, to clear a removed device's presence
	Resync       time.Duration   // a full comparison with the broker this often (default 5m)
	Log          *slog.Logger
}

// Changes counts what one reconciliation did.
type Changes struct {
	Created, Updated, Deleted int
}

func (c Changes) String() string {
	return fmt.Sprintf("%d created, %d updated, %d deleted", c.Created, c.Updated, c.Deleted)
}

// Run reconciles at once, then whenever the registry file changes (within
// about local.WatchInterval) and every Resync, until ctx is done. A failed
// round is logged and tried again on the next change or resync.
func (r *Reconciler) Run(ctx context.Context) error {
	resync := r.Resync
	if resync <= 0 {
		resync = 5 * time.Minute
	}
	changed := make(chan struct{}, 1)
	go local.NewWatcher(r.RegistryFile).Run(ctx, local.WatchInterval, func() { // before the first round reads the file
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	t := time.NewTicker(resync)
	defer t.Stop()
	for {
		if _, err := r.Round(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error("broker logins not reconciled; trying again on the next change", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-t.C:
		}
	}
}

// Round reads the registry file and Syncs the broker with it once.
func (r *Reconciler) Round(ctx context.Context) (Changes, error) {
	reg, err := registry.Load(r.RegistryFile)
	if err != nil {
		return Changes{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.Admin.WaitConnected(wctx); err != nil {
		return Changes{}, fmt.Errorf("as %s: %w", identity.Admin, err)
	}
	began := time.Now()
	ch, err := r.Sync(ctx, reg)
	if ch != (Changes{}) || err != nil {
		r.Log.Info("broker logins reconciled", "changes", ch.String(), "took", time.Since(began).Round(time.Millisecond), "err", err)
	}
	return ch, err
}

// Sync makes the broker's logins those reg and the key call for: it
// creates the missing, updates those whose password or client id changed
// (which disconnects their clients), and deletes the logins cafe manages
// that reg no longer has (likewise), clearing a deleted device's retained
// presence, which the broker keeps saying online for a client it kicked.
func (r *Reconciler) Sync(ctx context.Context, reg *registry.Registry) (Changes, error) {
	listed, err := r.Control.List(ctx)
	if err != nil {
		return Changes{}, err
	}
	have := make(map[string]dynsec.ListedClient, len(listed))
	for _, l := range listed {
		have[l.Username] = l
	}
	var ch Changes
	var errs []error
	for _, want := range Desired(reg, r.Key) {
		cur, ok := have[want.Username]
		delete(have, want.Username)
		switch {
		case !ok:
			errs = append(errs, r.create(ctx, want))
			ch.Created++
		case fingerprintOf(cur.TextDescription) != want.Fingerprint():
			errs = append(errs, r.update(ctx, want))
			ch.Updated++
		}
	}
	for _, gone := range have {
		if !Managed(gone.TextDescription) || scopeOf(gone.TextDescription) != r.scope() || gone.TextName == string(KindService) {
			continue // not this registry's, or a service: leave it
		}
		errs = append(errs, r.delete(ctx, gone))
		ch.Deleted++
	}
	return ch, errors.Join(errs...)
}

func (r *Reconciler) scope() string { return Scope(r.RegistryFile) }

func (r *Reconciler) create(ctx context.Context, l Login) error {
	cmd := dynsec.Command{"command": "createClient", "username": l.Username, "password": l.Password,
		"textname": string(l.Kind), "textdescription": describe(l, r.scope())}
	if l.ClientID != "" {
		cmd["clientid"] = l.ClientID
	}
	_, err := r.Control.Do(ctx, cmd)
	if errors.Is(err, dynsec.ErrAlreadyExists) { // made meanwhile by another reconciler
		return r.update(ctx, l)
	}
	return err
}

// update sets the password, client id and fingerprint of an existing
// login in one command (one save of the plugin's file); the plugin
// disconnects a client logged in with it.
func (r *Reconciler) update(ctx context.Context, l Login) error {
	_, err := r.Control.Do(ctx, dynsec.Command{"command": "modifyClient", "username": l.Username, "password": l.Password,
		"clientid": l.ClientID, "textname": string(l.Kind), "textdescription": describe(l, r.scope())})
	return err
}

func (r *Reconciler) delete(ctx context.Context, l dynsec.ListedClient) error {
	if _, err := r.Control.Do(ctx, dynsec.Command{"command": "deleteClient", "username": l.Username}); err != nil {
		return err
	}
	if l.TextName != string(KindDevice) || !contracts.ValidDeviceID(l.Username) {
		return nil
	}
	err := r.Admin.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(l.Username), QoS: 1, Retained: true})
	if err != nil {
		return fmt.Errorf("clear the presence of removed device %s: %w", l.Username, err)
	}
	return nil
}

// Open connects to the MQTT broker with cfg, which must log in as
// cafe-admin, and returns a Reconciler of registryFile on that link; close
// ends the link.
func Open(ctx context.Context, cfg mqttlink.Config, registryFile string, key identity.Key, log *slog.Logger) (r *Reconciler, close func(), err error) {
	link, err := mqttlink.New(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	stop := link.Background()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	control, err := dynsec.NewControl(wctx, link)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("the broker's dynamic security plugin, as %s: %w", identity.Admin, err)
	}
	return &Reconciler{RegistryFile: registryFile, Key: key, Control: control, Admin: link, Log: log}, stop, nil
}

// Keep is the whole reconciler as one long-running function (Open, then
// Run), for cafe up and `cafe broker-auth`.
func Keep(cfg mqttlink.Config, registryFile string, key identity.Key, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		r, closeLink, err := Open(ctx, cfg, registryFile, key, log)
		if err != nil {
			return err
		}
		defer closeLink()
		return r.Run(ctx)
	}
}

// RunAll runs every reconciler (one per broker of an MQTT tier) until ctx
// is done, each on its own, so that a broker that is down holds up no
// other; it returns once all have returned, with their errors.
func RunAll(ctx context.Context, rs []*Reconciler) error {
	errs := make(chan error, len(rs))
	for _, r := range rs {
		go func() { errs <- r.Run(ctx) }()
	}
	var all []error
	for range rs {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
