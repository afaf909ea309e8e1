package bus

import "strings"

// redacted replaces a password (or a token) of a URL.
const redacted = "xxxxx"

// redactURL hides the credentials of every URL of a NATS server list ("nats://u:p@h1,nats://…")
// so that they never reach a log or an error. It works on the text, not through url.Parse: a
// URL that does not parse (a password with '%', '/' or '@' in it) must be redacted too. The
// user part before the last '@' of each URL keeps its name and loses its password; a user part
// without ':' is a token and is replaced whole.
func redactURL(u string) string {
	var out []string
	for _, seg := range splitURLs(u) {
		head, rest := "", seg
		if i := strings.Index(seg, "://"); i >= 0 {
			head, rest = seg[:i+3], seg[i+3:]
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			out = append(out, seg)
			continue
		}
		user := redacted
		if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
			user = rest[:c] + ":" + redacted
		}
		out = append(out, head+user+rest[at:])
	}
	return strings.Join(out, ",")
}

// splitURLs splits a server list at each ',' that starts another URL (followed by a scheme and
// "://"), so that a ',' inside a password does not split it.
func splitURLs(u string) []string {
	var segs []string
	start := 0
	for i := 0; i < len(u); i++ {
		if u[i] != ',' {
			continue
		}
		j := i + 1
		for j < len(u) && isSchemeByte(u[j], j == i+1) {
			j++
		}
		if j > i+1 && strings.HasPrefix(u[j:], "://") {
			segs = append(segs, u[start:i])
			start = i + 1
		}
	}
	return append(segs, u[start:])
}

func isSchemeByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	case first:
		return false
	}
	return c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// urlSecrets returns the passwords and tokens of the URLs of a server list.
func urlSecrets(u string) []string {
	var out []string
	for _, seg := range splitURLs(u) {
		if i := strings.Index(seg, "://"); i >= 0 {
			seg = seg[i+3:]
		}
		at := strings.LastIndex(seg, "@")
		if at < 0 {
			continue
		}
		user := seg[:at]
		if c := strings.IndexByte(user, ':'); c >= 0 {
			user = user[c+1:]
		}
		if user != "" {
			out = append(out, user)
		}
	}
	return out
}

// scrubbedError is an error whose text had secrets replaced. Unwrap keeps errors.Is/As working
// on the original (whose own text is never shown by this type).
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub returns err with every non-empty secret in its text replaced (err itself when none occurs).
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg, changed := err.Error(), false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg, changed = strings.ReplaceAll(msg, s, redacted), true
		}
	}
	if !changed {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}
