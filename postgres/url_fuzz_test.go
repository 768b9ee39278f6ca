package postgres

import (
	"strings"
	"testing"
)

// FuzzPasswordNotSaid writes a password holding a marker, with any text around it,
// into a --store URL (in the user information before a host, in the query, or with
// no host after it) and checks that the marker is said nowhere: not by Redact, not in
// CheckURL's refusal, and, for a URL pgx reads, not in the host, database, user or
// run-time parameters of the configuration, which pgx's connect errors name. A
// password with an '@' and no host after it is left out: its rest is a host name as
// far as anything can tell ("postgres://user:pa@ss").
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
		urls := []string{
			"postgres://su:" + password + "@" + rest,
			"postgresql://:" + password + "@" + rest,
			"postgres://su@" + rest + query + "password=" + password,
			"postgres://su@" + rest + query + "sslpassword=" + password,
		}
		if !strings.Contains(password, "@") {
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
