package traffic

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// KeyBuilder builds IdentityCache blob keys:
// "<namespace>IDC:<cache version>:blob:<Model>:<schema hash>:<id>".
// The schema hash moves a model to an empty key space when its columns
// change, as IdentityCache does.
type KeyBuilder struct {
	prefix string
}

// NewKeyBuilder returns a builder for one model.
func NewKeyBuilder(namespace string, cacheVersion int, model, schemaHash string) KeyBuilder {
	return KeyBuilder{prefix: namespace + "IDC:" + strconv.Itoa(cacheVersion) + ":blob:" + model + ":" + schemaHash + ":"}
}

// Key returns the key of record id.
func (b KeyBuilder) Key(id uint64) string { return b.prefix + strconv.FormatUint(id, 10) }

// AppendKey appends the key of id to dst, for allocation-free hot paths.
func (b KeyBuilder) AppendKey(dst []byte, id uint64) []byte {
	dst = append(dst, b.prefix...)
	return strconv.AppendUint(dst, id, 10)
}

// schemaColumns is the seeded table's column list; its hash is the default
// schema hash, as IdentityCache hashes a model's columns.
const schemaColumns = "id:bigint unsigned,version:int unsigned,ref:bigint unsigned,payload:varbinary(4096)"

func schemaHash(table string) string {
	s := sha256.Sum256([]byte(table + "|" + schemaColumns))
	return hex.EncodeToString(s[:4])
}

// RefFor is the value of row id's ref column: a secondary, indexed key
// (idx_ref) that lookups query by, as an app queries by an external id. A
// bijection of the id (an odd multiplier modulo 2^64), so the index is not
// the primary key in disguise: neighbouring ids are far apart in it.
func RefFor(id uint64) uint64 { return id * 0x9E3779B97F4A7C15 }
