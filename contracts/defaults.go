package contracts

import (
	"crypto/rand"
	"encoding/hex"
	"reflect"
)

// FillDefaults sets every zero field of *c to the same field of d: how
// each package's New completes the Config it is given from its Defaults.
// Nested structs are filled field by field. A field tagged `fill:"-"` is
// left as it is, for values whose zero means something (a topology's max
// lengths: 0 is no limit). So a field whose default is not its zero value
// cannot be set to zero through New: such a field either takes the tag or
// has a default that is its zero value (every bool in cafe's configs is
// false by default for this reason).
func FillDefaults[T any](c *T, d T) {
	fill(reflect.ValueOf(c).Elem(), reflect.ValueOf(d))
}

func fill(c, d reflect.Value) {
	t := c.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("fill") == "-" {
			continue
		}
		cf, df := c.Field(i), d.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct:
			fill(cf, df)
		case cf.IsZero():
			cf.Set(df)
		}
	}
}

// NewName returns prefix followed by 8 random hex digits (b-3fa9c1d2): a
// name for one running instance (a barista's route, a caller's instance)
// that no other instance will pick.
func NewName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
