// Package format encodes cache entries with one of two format headers, as
// Active Support's cache_format_version 6.1 and 7.0 do: the same key holds
// bytes whose leading signature says which coder wrote them. Compatibility
// follows Rails: a 7.0 reader decodes 6.1 entries, a 6.1 reader treats 7.0
// entries as misses. That is the mechanism of incident 000 in a mixed
// fleet: while part of it still runs the old format, every entry a new
// process refills misses for the old processes, which refill it again in
// their format: a steady share of extra database load for as long as the
// fleet stays mixed.
package format

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version identifies a cache format.
type Version uint8

const (
	// Legacy is the older format (Active Support 6.1: a bare Marshal dump,
	// which starts with Ruby's Marshal signature 0x04 0x08).
	Legacy Version = 61
	// Current is the newer format (Active Support 7.0: a 0x00 0x11 signature
	// and a compression mark before the body).
	Current Version = 70
)

// String returns the format's name as used in metric tags.
func (v Version) String() string {
	switch v {
	case Legacy:
		return "legacy"
	case Current:
		return "current"
	}
	return fmt.Sprintf("unknown(%d)", uint8(v))
}

// Parse returns the version named s ("legacy"/"6.1" or "current"/"7.0").
func Parse(s string) (Version, error) {
	switch s {
	case "legacy", "6.1":
		return Legacy, nil
	case "current", "7.0":
		return Current, nil
	}
	return 0, fmt.Errorf("format: unknown format %q (want legacy or current)", s)
}

// UnmarshalOption reads a replay's format option: "legacy" or "6.1",
// "current" or "7.0".
func (v *Version) UnmarshalOption(x any) error {
	s, ok := x.(string)
	if !ok {
		return fmt.Errorf("must be a string (legacy, current, 6.1 or 7.0), got %T", x)
	}
	p, err := Parse(s)
	if err != nil {
		return fmt.Errorf("unknown format %q (want legacy, current, 6.1 or 7.0)", s)
	}
	*v = p
	return nil
}

// ErrForeign means the entry was written in a format the reader cannot
// decode; callers count it as a miss and refill, as the incident's readers did.
var ErrForeign = errors.New("format: foreign format")

// ErrCorrupt means the bytes carry no known signature or are truncated.
var ErrCorrupt = errors.New("format: corrupt entry")

// Entry is what a cache entry carries besides the record itself.
type Entry struct {
	// Version is the format the entry was (or will be) written in.
	Version Version
	// ExpiresAt is the entry's logical expiry in unix milliseconds; it can be
	// earlier than memcached's TTL when stale-while-revalidate keeps a stale
	// copy around.
	ExpiresAt int64
	// FillMillis is how long the fill took (XFetch's delta).
	FillMillis uint32
	// RowVersion is the database row version the entry was filled from.
	RowVersion uint32
	// Payload is the cached record.
	Payload []byte
}

var (
	legacySig  = []byte{0x04, 0x08}
	currentSig = []byte{0x00, 0x11, 0x00} // signature + "uncompressed" mark
)

const fieldsLen = 8 + 4 + 4

// Encode appends e in e.Version's format to dst and returns it.
func Encode(dst []byte, e Entry) ([]byte, error) {
	switch e.Version {
	case Legacy:
		dst = append(dst, legacySig...)
	case Current:
		dst = append(dst, currentSig...)
	default:
		return dst, fmt.Errorf("format: encode: unknown version %d", e.Version)
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.ExpiresAt))
	dst = binary.LittleEndian.AppendUint32(dst, e.FillMillis)
	dst = binary.LittleEndian.AppendUint32(dst, e.RowVersion)
	return append(dst, e.Payload...), nil
}

// Detect returns the format of b without decoding it.
func Detect(b []byte) (Version, error) {
	switch {
	case len(b) >= len(currentSig) && b[0] == currentSig[0] && b[1] == currentSig[1]:
		return Current, nil
	case len(b) >= len(legacySig) && b[0] == legacySig[0] && b[1] == legacySig[1]:
		return Legacy, nil
	}
	return 0, ErrCorrupt
}

// Reader decodes entries as a process running format Version would.
type Reader struct {
	// Version is the reader's own format.
	Version Version
	// Compatible makes the reader decode both formats (the dual-read
	// protection); without it a newer format's entry is ErrForeign to an
	// older reader (a Current reader decodes Legacy entries, as Rails 7.0
	// reads 6.1's).
	Compatible bool
}

// Decode parses b. Payload aliases b.
func (r Reader) Decode(b []byte) (Entry, error) {
	v, err := Detect(b)
	if err != nil {
		return Entry{}, err
	}
	if v != r.Version && !r.Compatible && !(r.Version == Current && v == Legacy) {
		return Entry{Version: v}, ErrForeign
	}
	sig := len(legacySig)
	if v == Current {
		sig = len(currentSig)
	}
	if len(b) < sig+fieldsLen {
		return Entry{}, ErrCorrupt
	}
	f := b[sig:]
	return Entry{
		Version:    v,
		ExpiresAt:  int64(binary.LittleEndian.Uint64(f)),
		FillMillis: binary.LittleEndian.Uint32(f[8:]),
		RowVersion: binary.LittleEndian.Uint32(f[12:]),
		Payload:    f[fieldsLen:],
	}, nil
}
