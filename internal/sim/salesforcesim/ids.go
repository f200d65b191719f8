package salesforcesim

import "strings"

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID builds an 18-character Salesforce-style id: the object's 3-character key prefix, a
// 2-character pod marker, a 10-character base62 sequence number and the 3-character
// case-safety suffix. base62 digits in ASCII order make ids of one object sort in creation
// order, which keeps "ORDER BY Id" and the bulk result order meaningful.
func newID(prefix string, seq uint64) string {
	var num [10]byte
	for i := len(num) - 1; i >= 0; i-- {
		num[i] = base62[seq%62]
		seq /= 62
	}
	id15 := prefix + "5g" + string(num[:])
	return id15 + idSuffix(id15)
}

// idSeq reads the sequence number newID put in an id, without checking the rest of it.
func idSeq(id string) (uint64, bool) {
	if len(id) < 15 {
		return 0, false
	}
	var seq uint64
	for i := 5; i < 15; i++ {
		d := strings.IndexByte(base62, id[i])
		if d < 0 {
			return 0, false
		}
		seq = seq*62 + uint64(d)
	}
	return seq, true
}

// idSuffix computes the case-safety suffix Salesforce appends to a 15-character id: for each
// 5-character chunk, a bit per uppercase letter, mapped onto A-Z0-5.
func idSuffix(id15 string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	var b strings.Builder
	for chunk := 0; chunk < 3; chunk++ {
		bits := 0
		for i := 0; i < 5; i++ {
			c := id15[chunk*5+i]
			if c >= 'A' && c <= 'Z' {
				bits |= 1 << i
			}
		}
		b.WriteByte(alphabet[bits])
	}
	return b.String()
}

// canonicalID turns a 15- or 18-character id into its 18-character form, as Salesforce
// accepts both wherever an id is expected; an 18-character id's suffix restores the case of a
// lower- or upper-cased id, which is what the suffix is for. It reports false for anything else.
func canonicalID(id string) (string, bool) {
	if !isAlnum(id) {
		return "", false
	}
	switch len(id) {
	case 15:
		return id + idSuffix(id), true
	case 18:
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
		b := []byte(id[:15])
		for chunk := 0; chunk < 3; chunk++ {
			bits := strings.IndexByte(alphabet, upper(id[15+chunk]))
			if bits < 0 {
				return "", false
			}
			for i := 0; i < 5; i++ {
				c := &b[chunk*5+i]
				if bits&(1<<i) != 0 {
					*c = upper(*c)
				} else if *c >= 'A' && *c <= 'Z' {
					*c += 'a' - 'A'
				}
			}
		}
		return string(b) + idSuffix(string(b)), true
	}
	return "", false
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(base62, rune(s[i])) {
			return false
		}
	}
	return true
}
