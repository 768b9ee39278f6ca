package gigya

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/socius/socius/internal/vectors"
)

// TestNodeFalsyVector: the npm package's base string in the test vectors (0 and false
// signed as empty) is what VerifyNodeFalsy signs for the values as the package sends
// them; a signature of the values as sent, or with another key, is not taken for it.
func TestNodeFalsyVector(t *testing.T) {
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	v := f.NodeFalsy
	if v.BaseString == "" || len(v.Params) == 0 {
		t.Fatal("no node_falsy_value_quirk in the vectors")
	}
	var sent []Param
	for name, value := range v.Params {
		sent = append(sent, Param{Name: name, Value: fmt.Sprint(value)}) // 0 and false as sent
	}
	names := NodeFalsy(sent)
	slices.Sort(names)
	if strings.Join(names, ",") != "age,flag" {
		t.Errorf("NodeFalsy = %v, want age and flag", names)
	}
	const url = "https://socialize.us1.gigya.com/socialize.setUserInfo"
	key := []byte("a key of the test")
	sig := SignBase(key, v.BaseString)
	if !VerifyNodeFalsy(key, sig, []string{"http://other/x", url}, sent) {
		t.Errorf("the npm package's signature of %v is not recognised", sent)
	}
	if VerifyNodeFalsy([]byte("another key"), sig, []string{url}, sent) {
		t.Error("a signature with another key is taken for the npm package's")
	}
	if VerifyNodeFalsy(key, Sign(key, "POST", url, sent), []string{url}, sent) {
		t.Error("the standard signature is taken for the npm package's")
	}
	if NodeFalsy([]Param{{Name: "UID", Value: "u"}, {Name: "sig", Value: "0"}}) != nil {
		t.Error("NodeFalsy names a parameter without 0 or false, or sig")
	}
	// NaN: sent as "NaN", signed as empty, like 0 and false.
	nan := []Param{{Name: "UID", Value: "u"}, {Name: "cid", Value: "NaN"}}
	nanSig := Sign(key, "POST", url, []Param{{Name: "UID", Value: "u"}, {Name: "cid", Value: ""}})
	if names := NodeFalsy(nan); len(names) != 1 || names[0] != "cid" {
		t.Errorf("NodeFalsy = %v, want cid", names)
	}
	if !VerifyNodeFalsy(key, nanSig, []string{url}, nan) {
		t.Error("the npm package's signature of NaN (signed as empty) is not recognised")
	}
}
