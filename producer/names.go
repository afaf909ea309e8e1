package producer

import (
	"path"
	"strings"
)

// Reasons a name is skipped (logged at debug level).
const (
	skipHidden    = "hidden or underscore name"
	skipTemporary = "temporary name"
	skipNoPartner = "no partner archive_glob matches"
	skipHiddenDir = "inside a hidden or underscore folder"
	// SkipAmbiguous starts the reason of a name that several partners' archive_globs match: which
	// partner's settings apply is unknown, so it is not taken (ScanResult.Ambiguous).
	SkipAmbiguous = "archive_glob of several partners matches"
)

// ignoredBase reports why a base name is never an archive: names writers use while a file is
// incomplete (*.tmp, *.part, .name, .tmp-…, _name). "" means it may be one.
func ignoredBase(base string) string {
	if base == "" {
		return skipTemporary
	}
	if base[0] == '.' || base[0] == '_' {
		return skipHidden
	}
	lower := strings.ToLower(base)
	if strings.HasSuffix(lower, ".tmp") || strings.HasSuffix(lower, ".part") {
		return skipTemporary
	}
	return ""
}

// classify decides whether rel (a slash-separated path relative to the landing root) is an
// archive, and whose. It returns the partner name, or a skip reason.
func (p *Producer) classify(rel string) (partner, skip string) {
	dir, base := path.Split(rel)
	if r := ignoredBase(base); r != "" {
		return "", r
	}
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part != "" && ignoredBase(part) == skipHidden {
			return "", skipHiddenDir
		}
	}
	if name, skip, ok := p.matchPartner(base); ok {
		return name, skip
	}
	// "*.tgz" is accepted wherever "*.tar.gz" is: match the name as if it had the long suffix.
	if lower := strings.ToLower(base); strings.HasSuffix(lower, ".tgz") {
		if name, skip, ok := p.matchPartner(base[:len(base)-len(".tgz")] + ".tar.gz"); ok {
			return name, skip
		}
	}
	return "", skipNoPartner
}

// matchPartner returns the partner whose archive_glob matches base; when the globs written in
// the configuration of several partners match, it returns a skip reason naming them
// (SkipAmbiguous) instead of guessing. A partner without archive_glob is a fallback: it takes
// what no written glob matches.
func (p *Producer) matchPartner(base string) (partner, skip string, ok bool) {
	var names []string
	fallback := ""
	for i := range p.partners.Partners {
		pt := &p.partners.Partners[i]
		if m, _ := path.Match(pt.ArchiveGlob, base); m {
			if pt.Fallback() {
				if fallback == "" {
					fallback = pt.Name
				}
				continue
			}
			names = append(names, pt.Name)
		}
	}
	switch len(names) {
	case 0:
		return fallback, "", fallback != ""
	case 1:
		return names[0], "", true
	}
	return "", SkipAmbiguous + ": " + strings.Join(names, ", "), true
}
