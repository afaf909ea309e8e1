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
	if name, ok := p.matchPartner(base); ok {
		return name, ""
	}
	// "*.tgz" is accepted wherever "*.tar.gz" is: match the name as if it had the long suffix.
	if lower := strings.ToLower(base); strings.HasSuffix(lower, ".tgz") {
		if name, ok := p.matchPartner(base[:len(base)-len(".tgz")] + ".tar.gz"); ok {
			return name, ""
		}
	}
	return "", skipNoPartner
}

// matchPartner returns the partner for base when some partner's archive_glob matches it; the
// partner is the one config.File.PartnerFor picks (the first match).
func (p *Producer) matchPartner(base string) (string, bool) {
	for _, pt := range p.partners.Partners {
		if ok, _ := path.Match(pt.ArchiveGlob, base); ok {
			return p.partners.PartnerFor(base).Name, true
		}
	}
	return "", false
}
