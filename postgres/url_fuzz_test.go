package postgres

import (
	"strings"
	"testing"
)

// FuzzPasswordNotSaid writes a password holding a marker, with any text around it,
// into a --store URL (in the user information before a host, in the query, or with
// no host after it) and checks that the marker is said nowhere: not by Redact, not in
// CheckURL's refusal, and, for a URL pgx reads, not in the host, database, user or
// run-time parameters of the configuration, which pgx's connect errors name.
//
// Left out are the passwords whose rest is, as far as anything can tell, another part
// of the URL: one with an '@' or a '/' before a host (TestCheckURLAtInPassword and
// TestCheckURLEmptyPort hold the forms refused; "postgres://user:@pa?x=@ss" is as well
// an empty password and the host pa, "postgres://user:1/?x=@ss" the host user, port 1
// and a parameter x);
// one with an '@', ',', '/', '?' or '#' and no host after it ("postgres://user:pa@ss",
// "postgres://user:12,ss", two hosts, "postgres://user:12/ss", port 12 and the
// database ss); one in the query with an '&' and an '=' after it
// ("?password=pa&application_name=ss").
func FuzzPasswordNotSaid(f *testing.F) {
	const marker = "S3cr3tPW"
	for _, sd := range [][3]string{
		{"", "", "127.0.0.1:1/x"},
		{"a@", "", "127.0.0.1:1/x"},
		{"a/", "@b", "127.0.0.1:1/x"},
		{"a?", "#b", "127.0.0.1:1/x"},
		{"a b", "%", "h1:1,h2:2/x?sslmode=disable"},
		{"'", "\"", "127.0.0.1:notaport/x"},
		{"", ":", "127.0.0.1:1/x?pool_max_conns=many"},
		{"%41", "%zz", "[::1]:1/x"},
	} {
		f.Add(sd[0], sd[1], sd[2])
	}
	f.Fuzz(func(t *testing.T, before, after, rest string) {
		if strings.Contains(rest, marker) {
			return
		}
		password := before + marker + after
		query := "?"
		if strings.Contains(rest, "?") {
			query = "&"
		}
		var urls []string
		if !strings.ContainsAny(password, "@/") {
			urls = append(urls, "postgres://su:"+password+"@"+rest, "postgresql://:"+password+"@"+rest)
		}
		if _, tail, ok := strings.Cut(password, "&"); !ok || !strings.Contains(tail, "=") {
			urls = append(urls,
				"postgres://su@"+rest+query+"password="+password,
				"postgres://su@"+rest+query+"sslpassword="+password)
		}
		if !strings.ContainsAny(password, "@,/?#") {
			urls = append(urls, "postgres://su:"+password)
		}
		for _, u := range urls {
			if s := Redact(u); strings.Contains(s, marker) {
				t.Errorf("Redact(%q) = %q", u, s)
			}
			cfg, _, err := parseConfig(u)
			if err != nil {
				if strings.Contains(err.Error(), marker) {
					t.Errorf("CheckURL(%q) = %v", u, err)
				}
				continue
			}
			said := []string{cfg.ConnConfig.Host, cfg.ConnConfig.Database, cfg.ConnConfig.User}
			for _, fb := range cfg.ConnConfig.Fallbacks {
				said = append(said, fb.Host)
			}
			for name, v := range cfg.ConnConfig.RuntimeParams {
				said = append(said, name, v)
			}
			for _, s := range said {
				if strings.Contains(s, marker) {
					t.Errorf("%q is read with %q outside its password, which a connect error would say", u, s)
				}
			}
		}
	})
}
