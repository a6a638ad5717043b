package fedcommittee

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// checkJSONKeys walks a JSON value alongside the Go type it was decoded into and
// refuses what encoding/json lets through silently: a key that names a field only
// case-insensitively ({"CID": …} for "cid") and a key given twice (the last one
// wins). Either would let the transaction's arguments, which clients and auditors
// read, say something other than the record the contract stored.
func checkJSONKeys(what, input string, into reflect.Type) error {
	dec := json.NewDecoder(strings.NewReader(input))
	dec.UseNumber()
	return walkJSON(dec, into, what)
}

func walkJSON(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: invalid JSON: %v", path, err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	t = derefType(t)
	switch delim {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return fmt.Errorf("%s: invalid JSON: %v", path, err)
			}
			key := keyTok.(string)
			if seen[key] {
				return fmt.Errorf("%s: invalid JSON: duplicate key %q", path, key)
			}
			seen[key] = true
			var elem reflect.Type
			if t != nil && t.Kind() == reflect.Struct {
				f, found := jsonField(t, key)
				if !found {
					return fmt.Errorf("%s: invalid JSON: unknown field %q (field names are case-sensitive)", path, key)
				}
				elem = f.Type
			} else if t != nil && t.Kind() == reflect.Map {
				elem = t.Elem()
			}
			if err := walkJSON(dec, elem, path+"."+key); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkJSON(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

func derefType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// jsonField finds the struct field whose JSON name is exactly key, looking into
// embedded structs as encoding/json does.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			if inner := derefType(f.Type); inner.Kind() == reflect.Struct {
				if g, ok := jsonField(inner, key); ok {
					return g, true
				}
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		if f.IsExported() && name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// jsonFieldPath rewrites the field path of a decoding error as the JSON
// document spells it: encoding/json names the Go structs a field is
// embedded through ("ModelTerms.quorum"), which a caller never sees in its
// input, so those names are left out ("quorum").
func jsonFieldPath(root reflect.Type, path string) string {
	t := derefType(root)
	var out []string
	for _, part := range strings.Split(path, ".") {
		if t != nil && t.Kind() == reflect.Struct {
			if f, ok := t.FieldByName(part); ok && f.Anonymous {
				t = derefType(f.Type)
				continue
			}
			if f, ok := jsonField(t, part); ok {
				t = elemType(f.Type)
			} else {
				t = nil
			}
		}
		out = append(out, part)
	}
	return strings.Join(out, ".")
}

// elemType is t without pointers, slices, arrays and maps around it.
func elemType(t reflect.Type) reflect.Type {
	for t = derefType(t); t != nil; t = derefType(t.Elem()) {
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
		default:
			return t
		}
	}
	return t
}
