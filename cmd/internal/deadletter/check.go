package deadletter

import (
	"errors"
	"fmt"

	"cafe/contracts/registry"
)

// Refusals of RegistryCheck.
var (
	ErrNoClient    = errors.New("it names no client (not a command or result cafe made)")
	ErrClientGone  = errors.New("its client is no longer in the registry")
	ErrDeviceGone  = errors.New("its device is no longer registered")
	ErrNotEntitled = errors.New("its client may no longer command its device")
)

// RegistryCheck re-checks a dead letter against the registry as it is
// now, as the cashier would check a new command: the client still exists,
// the device is still registered, and the client may still command it.
// A replay that skipped this would let a command through that the
// cashier would refuse today.
func RegistryCheck(reg *registry.Registry) Check {
	return func(l Letter) error {
		if l.ClientID == "" {
			return ErrNoClient
		}
		c, ok := reg.Client(l.ClientID)
		if !ok {
			return fmt.Errorf("%w (%s)", ErrClientGone, l.ClientID)
		}
		if l.DeviceID == "" {
			return nil
		}
		if _, ok := reg.Device(l.DeviceID); !ok {
			return fmt.Errorf("%w (%s)", ErrDeviceGone, l.DeviceID)
		}
		if !c.MayCommand(l.DeviceID) {
			return fmt.Errorf("%w (%s may not command %s)", ErrNotEntitled, l.ClientID, l.DeviceID)
		}
		return nil
	}
}
