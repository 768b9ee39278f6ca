package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/socius/socius"
)

// maxTokenText bounds what token revoke reads: a Socius token is far shorter.
const maxTokenText = 4096

func runToken(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	if err, done := noSubcommand(args, "token", "usage: socius token revoke [flags] [TOKEN]", stdout, stderr); done {
		return err
	}
	var sf storeFlags
	fs := newFlagSet("socius token "+args[0], stdout, stderr)
	lookupEnv = sf.register(fs, lookupEnv, stderr)
	switch args[0] {
	case "revoke":
		file := fs.String("token-file", "-", "file holding the token, when it is not an argument (- for standard input: keeps it out of the shell's history and the process list)")
		argsUsage(fs, "usage: socius token revoke [TOKEN] [--token-file FILE] [--data DIR | --store URL]")
		pos, err := parseArgs(fs, args[1:], lookupEnv)
		if err != nil {
			return err
		}
		var text string
		switch len(pos) {
		case 0:
			if text, err = readToken(ctx, *file); err != nil {
				return err
			}
		case 1:
			text = pos[0]
		default:
			return badFlag("one token at a time")
		}
		if strings.TrimSpace(text) == "" {
			// An unset variable ("$TOKEN") or an empty file: no token was given, which
			// "not a Socius token" would not say.
			from := "the argument is empty"
			if len(pos) == 0 {
				from = "nothing was read from standard input"
				if *file != "-" {
					from = "--token-file " + *file + " is empty"
				}
			}
			return badFlag("no token given: %s; give the token as the argument, in --token-file FILE or on standard input", from)
		}
		return withStore(ctx, sf, func(st socius.Store) error {
			return revokeToken(ctx, st, text, time.Now(), stdout)
		})
	}
	fmt.Fprintf(stderr, "socius token: unknown subcommand %q (revoke)%s\n", args[0], flagsGoAfter(args[0], "subcommand", "socius token revoke --data DIR"))
	return errUsage
}

// readToken reads a token from the first line of a file, or of standard input for "-".
func readToken(ctx context.Context, name string) (string, error) {
	r, err := openInput(ctx, "--token-file", name)
	if err != nil {
		return "", err
	}
	defer r.Close()
	line, err := bufio.NewReader(io.LimitReader(r, maxTokenText)).ReadString('\n')
	if err != nil && ctx.Err() != nil {
		return "", errors.New("stopped by a signal while reading the token: nothing was revoked")
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the token: %w", err)
	}
	return line, nil
}

// revokeToken ends an access or session token at now, as logout does for a user's
// tokens: the only way to end a token that is bound to no user (a client_credentials
// token without x_siteUID) before it expires. It says what the token was; a token
// revoked before keeps its first revocation time.
func revokeToken(ctx context.Context, st socius.Store, text string, now time.Time, stdout io.Writer) error {
	text = strings.TrimSpace(text)
	if _, ok := socius.TokenKindOf(text); !ok {
		return fmt.Errorf("not a Socius token: an access token starts with %s, a session token with %s",
			socius.AccessTokenPrefix, socius.SessionTokenPrefix)
	}
	hash := socius.HashToken(text)
	unknown := errors.New("unknown token: this store never issued it, deleted it with its userKey (socius key delete), or removed it 7 days after it expired or was revoked")
	t, err := st.Token(ctx, hash)
	if errors.Is(err, socius.ErrNotFound) {
		// Removed by housekeeping, it may still be the root of live sessions (a
		// revocation cut short, or one by a logout, which ends its user's tokens only).
		minted, err := st.RevokeToken(ctx, hash, now)
		if errors.Is(err, socius.ErrNotFound) {
			return unknown
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d session%s made from it: the token itself was removed 7 days after it expired or was revoked\n", minted, plural(minted))
		return nil
	}
	if err != nil {
		return err
	}
	// This machine's clock may be behind the server's that issued the token (or an
	// emulator's, moved ahead): never a revocation before the token existed, which
	// housekeeping would take for a week old.
	if now.Before(t.CreatedAt) {
		now = t.CreatedAt
	}
	what := describeToken(t)
	// Revoked before by a logout, say, which ends the tokens of its user only:
	// revoking again ends the tokens minted from it too, and keeps the first time.
	minted, err := st.RevokeToken(ctx, hash, now)
	if errors.Is(err, socius.ErrNotFound) {
		return unknown // removed by housekeeping since it was read, with nothing made from it
	}
	if err != nil {
		return err
	}
	sessions := ""
	if minted > 0 {
		sessions = fmt.Sprintf("; with it %d session%s made from it", minted, plural(minted))
	}
	switch {
	case !t.RevokedAt.IsZero():
		fmt.Fprintf(stdout, "already revoked at %s: %s%s\n", t.RevokedAt.UTC().Format(time.RFC3339), what, sessions)
		return nil
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		fmt.Fprintf(stdout, "revoked (it had expired already): %s%s\n", what, sessions)
		return nil
	}
	fmt.Fprintf(stdout, "revoked: %s%s\n", what, sessions)
	if t.Root != "" {
		// Its own minted sessions hang from the top of its chain: say how to end them.
		fmt.Fprintf(stdout, "note: it was made from another token; sessions made with it stay until that token is revoked, or UID %s logs out (socialize.logout)\n", t.UID)
	}
	return nil
}

// describeToken names a token's kind, site, user and credential, never its text.
func describeToken(t *socius.Token) string {
	var b strings.Builder
	if t.Kind == socius.SessionToken {
		b.WriteString("session token")
	} else {
		b.WriteString("access token")
	}
	fmt.Fprintf(&b, " of apiKey %s", t.APIKey)
	if t.UID != "" {
		fmt.Fprintf(&b, ", UID %s", t.UID)
	} else {
		b.WriteString(", bound to no user")
	}
	if t.UserKey != "" {
		fmt.Fprintf(&b, ", obtained with userKey %s", t.UserKey)
	}
	fmt.Fprintf(&b, ", issued %s", t.CreatedAt.UTC().Format(time.RFC3339))
	if t.ExpiresAt.IsZero() {
		b.WriteString(", no expiry")
	} else {
		fmt.Fprintf(&b, ", expiring %s", t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// plural is "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
