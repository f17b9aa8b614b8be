package wsgorilla

import (
	"encoding/json"
	"reflect"
	"sync"
)

// gqlgen hands WriteJSON its protocols' messages: structs of a payload (json.RawMessage),
// an id and a type, in that order, the first two omitted when empty. For the message of
// every event to every subscriber ("next", "data"), encoding/json would check and copy the
// payload that gqlgen has just produced with json.Marshal once more, and reach every field
// by reflection; appendData writes the same bytes (with the newline encoding/json's Encoder
// adds) straight away. Other messages, rare, take encoding/json's way.

// messageShape tells whether a type is such a message.
type messageShape struct{ ok bool }

var shapes sync.Map // reflect.Type → messageShape

var rawMessageType = reflect.TypeFor[json.RawMessage]()

func shapeOf(t reflect.Type) messageShape {
	if s, ok := shapes.Load(t); ok {
		return s.(messageShape)
	}
	ok := t.Kind() == reflect.Struct && t.NumField() >= 3
	for i := 0; ok && i < t.NumField(); i++ {
		f := t.Field(i)
		switch i {
		case 0:
			ok = f.Type == rawMessageType && f.Tag.Get("json") == "payload,omitempty"
		case 1:
			ok = f.Type.Kind() == reflect.String && f.Tag.Get("json") == "id,omitempty"
		case 2:
			ok = f.Type.Kind() == reflect.String && f.Tag.Get("json") == "type"
		default:
			ok = !f.IsExported() // encoding/json would write an exported one too
		}
	}
	s := messageShape{ok: ok}
	shapes.Store(t, s)
	return s
}

// appendData appends v as encoding/json's Encoder would write it, when v is a gqlgen
// message carrying a result (its payload made by json.Marshal, so valid and compact); ok
// is false for anything else.
func appendData(dst []byte, v any) (out []byte, ok bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct || !shapeOf(rv.Type()).ok {
		return dst, false
	}
	payload, id, typ := rv.Field(0).Bytes(), rv.Field(1).String(), rv.Field(2).String()
	if typ != "next" && typ != "data" || len(payload) == 0 || id == "" {
		return dst, false
	}
	dst = append(dst, `{"payload":`...)
	dst = append(dst, payload...)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, id)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, typ...)
	return append(dst, '"', '}', '\n'), true
}

// appendString appends s as a JSON string, as encoding/json writes it.
func appendString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return append(dst, b...)
}
