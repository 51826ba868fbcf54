package history

import (
	"encoding/binary"
	"errors"
)

// SQLite has no array type, so the SQLite store keeps a message's attachments
// in one BLOB: each attachment as its length (unsigned varint) followed by its
// bytes. No attachments is stored as NULL, so one empty attachment (a single
// 0x00 byte) stays distinct from none.

// encodeAttachments returns the BLOB for atts, or nil (NULL) for none.
func encodeAttachments(atts [][]byte) []byte {
	if len(atts) == 0 {
		return nil
	}
	n := 0
	for _, a := range atts {
		n += binary.MaxVarintLen64 + len(a)
	}
	b := make([]byte, 0, n)
	for _, a := range atts {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	return b
}

var errBadAttachments = errors.New("history: corrupt attachments column")

// decodeAttachments parses a BLOB written by encodeAttachments. It returns an
// error, never panics, on a corrupt value.
func decodeAttachments(b []byte) ([][]byte, error) {
	if b == nil {
		return nil, nil
	}
	var atts [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errBadAttachments
		}
		b = b[k:]
		atts = append(atts, b[:n:n])
		b = b[n:]
	}
	if atts == nil {
		// A non-NULL empty BLOB: not something encodeAttachments writes.
		return nil, errBadAttachments
	}
	return atts, nil
}
