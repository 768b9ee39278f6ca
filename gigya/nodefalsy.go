package gigya

import "slices"

// The gigya npm package (Node) signs a parameter whose value is the number 0, NaN or
// false as empty (it signs (value || '').toString()) but sends it as "0", "NaN" or
// "false". Its
// signature of such a request does not match the base string Gigya builds, and Gigya
// refuses it. Socius refuses it as well; these functions let it say why.

// NodeFalsy returns the names of the parameters that package would have signed as
// empty: those sent as "0", "NaN" or "false" (sig aside); nil when there is none.
func NodeFalsy(params []Param) []string {
	var names []string
	for _, p := range params {
		if nodeFalsy(p.Value) && !equalFoldASCII(p.Name, "sig") {
			names = append(names, p.Name)
		}
	}
	return names
}

func nodeFalsy(v string) bool { return v == "0" || v == "false" || v == "NaN" }

// VerifyNodeFalsy reports whether sig is the npm package's signature of the request
// for one of urls: a POST, with the values NodeFalsy names signed as empty. Each
// comparison is in constant time.
func VerifyNodeFalsy(key []byte, sig string, urls []string, params []Param) bool {
	if NodeFalsy(params) == nil {
		return false
	}
	blanked := slices.Clone(params)
	for i := range blanked {
		if nodeFalsy(blanked[i].Value) {
			blanked[i].Value = ""
		}
	}
	return Verify(key, sig, "POST", urls, blanked) >= 0
}
