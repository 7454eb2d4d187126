// Package onnxmeta rewrites the metadata of an ONNX model file (ModelProto.metadata_props, a list of
// string key/value pairs, field 14 of onnx.proto's ModelProto) without decoding the graph: every other
// top-level field is copied byte for byte, so the weights and the graph stay exactly as they were and
// the file's other metadata keys keep their order.
//
// This is how thresholds calibrated in the workspace travel with a downloaded or exported model
// (rdre.thresholds, rdre.calibration): ONNX Runtime reads them back as the model's custom metadata.
package onnxmeta

import (
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// ModelProto field numbers (onnx/onnx.proto3).
const (
	fieldIRVersion     = 1
	fieldGraph         = 7
	fieldMetadataProps = 14
	entryKey           = 1 // StringStringEntryProto.key
	entryValue         = 2 // StringStringEntryProto.value
)

// ErrFormat is wrapped by every error about the bytes not being an ONNX model.
var ErrFormat = errors.New("not an ONNX model")

// Read returns the metadata_props of an ONNX file.
func Read(model []byte) (map[string]string, error) {
	out := map[string]string{}
	err := walk(model, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num == fieldMetadataProps && typ == protowire.BytesType {
			k, v, err := entry(value)
			if err != nil {
				return err
			}
			out[k] = v
		}
		return nil
	})
	return out, err
}

// Set returns a copy of model whose metadata_props hold kv: an existing key is replaced (in place of its
// first occurrence, later duplicates dropped), a new key is added at the end, in key order. An empty
// value removes the key.
func Set(model []byte, kv map[string]string) ([]byte, error) {
	out := make([]byte, 0, len(model)+256)
	done := map[string]bool{}
	err := walk(model, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num != fieldMetadataProps || typ != protowire.BytesType {
			out = append(out, field...)
			return nil
		}
		k, _, err := entry(value)
		if err != nil {
			return err
		}
		nv, replace := kv[k]
		switch {
		case !replace:
			out = append(out, field...)
		case !done[k] && nv != "":
			out = appendEntry(out, k, nv)
		}
		done[k] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		if !done[k] && kv[k] != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = appendEntry(out, k, kv[k])
	}
	return out, nil
}

// walk calls fn for every top-level field of a ModelProto: its number, wire type, the field's whole
// encoding and, for length-delimited fields, the payload. It checks that the bytes look like a model
// (an ir_version and a graph), so that a wrong file is refused rather than rewritten.
func walk(b []byte, fn func(num protowire.Number, typ protowire.Type, field, value []byte) error) error {
	var ir, graph bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrFormat, protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return fmt.Errorf("%w: field %d: %v", ErrFormat, num, protowire.ParseError(m))
		}
		field := b[:n+m]
		var value []byte
		if typ == protowire.BytesType {
			value, _ = protowire.ConsumeBytes(b[n:])
		}
		switch {
		case num == fieldIRVersion && typ == protowire.VarintType:
			ir = true
		case num == fieldGraph && typ == protowire.BytesType:
			graph = true
		}
		if err := fn(num, typ, field, value); err != nil {
			return err
		}
		b = b[n+m:]
	}
	if !ir || !graph {
		return fmt.Errorf("%w: no ir_version or no graph", ErrFormat)
	}
	return nil
}

// entry decodes a StringStringEntryProto.
func entry(b []byte) (key, value string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", fmt.Errorf("%w: metadata entry: %v", ErrFormat, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return "", "", fmt.Errorf("%w: metadata entry: %v", ErrFormat, protowire.ParseError(m))
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return "", "", fmt.Errorf("%w: metadata entry: %v", ErrFormat, protowire.ParseError(m))
		}
		switch num {
		case entryKey:
			key = string(v)
		case entryValue:
			value = string(v)
		}
		b = b[m:]
	}
	return key, value, nil
}

func appendEntry(b []byte, k, v string) []byte {
	var e []byte
	e = protowire.AppendTag(e, entryKey, protowire.BytesType)
	e = protowire.AppendString(e, k)
	e = protowire.AppendTag(e, entryValue, protowire.BytesType)
	e = protowire.AppendString(e, v)
	b = protowire.AppendTag(b, fieldMetadataProps, protowire.BytesType)
	return protowire.AppendBytes(b, e)
}
