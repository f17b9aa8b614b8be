package whatsapp

import (
	"reflect"
	"strings"
)

// withoutNUL returns ev with every NUL character of its strings replaced by U+FFFD.
// PostgreSQL's text and jsonb cannot hold NUL, and every string of an event can come from
// another WhatsApp user (a text, a push name, a group's subject, even a message ID): one
// that held NUL would fail to store, again at every redelivery, and hold up its session.
// Events without NUL, nearly all, are only read: returned as they are, nothing copied.
func withoutNUL[T any](ev T) T {
	if !nul(reflect.ValueOf(&ev).Elem(), false) {
		return ev
	}
	v := reflect.ValueOf(&ev).Elem()
	nul(v, true)
	return v.Interface().(T)
}

// nul reports whether a string reachable from v holds NUL. With fix set it also replaces
// them, in place, copying first what v shares with its caller (pointed-to structs, slices,
// maps) and holds NUL; v must then be settable.
func nul(v reflect.Value, fix bool) bool {
	switch v.Kind() {
	case reflect.String:
		if strings.IndexByte(v.String(), 0) < 0 {
			return false
		}
		if fix {
			v.SetString(strings.ReplaceAll(v.String(), "\x00", "\uFFFD"))
		}
		return true
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() || !nul(v.Elem(), false) {
			return false
		}
		if fix {
			c := reflect.New(v.Elem().Type())
			c.Elem().Set(v.Elem())
			nul(c.Elem(), true)
			if v.Kind() == reflect.Interface {
				v.Set(c.Elem())
			} else {
				v.Set(c)
			}
		}
		return true
	case reflect.Struct:
		found := false
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && nul(v.Field(i), fix) {
				if !fix {
					return true
				}
				found = true
			}
		}
		return found
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return false // bytes (media descriptors, raw JSON) are stored as bytes or escaped
		}
		found := false
		for i := range v.Len() {
			if found = nul(v.Index(i), false); found {
				break
			}
		}
		if found && fix {
			c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(c, v)
			for i := range c.Len() {
				nul(c.Index(i), true)
			}
			v.Set(c)
		}
		return found
	case reflect.Map:
		found := false
		for it := v.MapRange(); it.Next() && !found; {
			found = nul(it.Key(), false) || nul(it.Value(), false)
		}
		if found && fix {
			c := reflect.MakeMapWithSize(v.Type(), v.Len())
			for it := v.MapRange(); it.Next(); {
				k := reflect.New(it.Key().Type()).Elem()
				k.Set(it.Key())
				e := reflect.New(it.Value().Type()).Elem()
				e.Set(it.Value())
				nul(k, true)
				nul(e, true)
				c.SetMapIndex(k, e)
			}
			v.Set(c)
		}
		return found
	}
	return false
}
