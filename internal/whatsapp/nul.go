package whatsapp

import (
	"reflect"
	"strings"
)

// withoutNUL returns ev with every NUL character of its strings replaced by U+FFFD.
// PostgreSQL's text and jsonb cannot hold NUL, and every string of an event can come from
// another WhatsApp user (a text, a push name, a group's subject, even a message ID): one
// that held NUL would fail to store, again at every redelivery, and hold up its session.
func withoutNUL[T any](ev T) T {
	v := reflect.ValueOf(&ev).Elem()
	if clean(v) {
		return v.Interface().(T)
	}
	return ev
}

// clean replaces NUL in the strings reachable from v in place, copying what v shares with
// its caller (pointed-to structs, slices, maps) before changing it, and reports whether it
// changed anything.
func clean(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		if strings.IndexByte(v.String(), 0) < 0 {
			return false
		}
		v.SetString(strings.ReplaceAll(v.String(), "\x00", "\uFFFD"))
		return true
	case reflect.Interface:
		if v.IsNil() {
			return false
		}
		c := reflect.New(v.Elem().Type()).Elem()
		c.Set(v.Elem())
		if !clean(c) {
			return false
		}
		v.Set(c)
		return true
	case reflect.Pointer:
		if v.IsNil() {
			return false
		}
		c := reflect.New(v.Elem().Type())
		c.Elem().Set(v.Elem())
		if !clean(c.Elem()) {
			return false
		}
		v.Set(c)
		return true
	case reflect.Struct:
		changed := false
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() && clean(f) {
				changed = true
			}
		}
		return changed
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return false // bytes (media descriptors, raw JSON) are stored as bytes or escaped
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		changed := false
		for i := range c.Len() {
			if clean(c.Index(i)) {
				changed = true
			}
		}
		if changed {
			v.Set(c)
		}
		return changed
	case reflect.Map:
		if v.IsNil() {
			return false
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		changed := false
		for it := v.MapRange(); it.Next(); {
			k := reflect.New(it.Key().Type()).Elem()
			k.Set(it.Key())
			e := reflect.New(it.Value().Type()).Elem()
			e.Set(it.Value())
			ck, ce := clean(k), clean(e)
			changed = changed || ck || ce
			c.SetMapIndex(k, e)
		}
		if changed {
			v.Set(c)
		}
		return changed
	}
	return false
}
